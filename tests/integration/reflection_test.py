#!/usr/bin/env python3
"""Server reflection: a client with no .proto file and no generated code finds
hybridserve.v1.Inference through reflection and calls Generate (what grpcurl
does)."""
import unittest

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase)

import harness

SERVICE = "hybridserve.v1.Inference"

server = None


def setUpModule():
    global server
    server = harness.Server(harness.make_tiny_model("tiny")).start()


def tearDownModule():
    server.stop()


class ReflectionTest(unittest.TestCase):
    def test_find_and_call_generate_by_reflection(self):
        with grpc.insecure_channel(server.address) as channel:
            db = ProtoReflectionDescriptorDatabase(channel)
            services = db.get_services()
            self.assertIn(SERVICE, services)
            self.assertIn("grpc.health.v1.Health", services)
            # A pool of its own: nothing from the generated stubs.
            pool = descriptor_pool.DescriptorPool(db)
            service = pool.FindServiceByName(SERVICE)
            self.assertEqual({m.name for m in service.methods},
                             {"Generate", "Tokenize", "Detokenize", "ListModels", "GetModel"})
            method = service.FindMethodByName("Generate")
            self.assertTrue(method.server_streaming)
            Request = message_factory.GetMessageClass(method.input_type)
            Response = message_factory.GetMessageClass(method.output_type)
            self.assertIsNot(Request, harness.pb.GenerateRequest)

            req = Request()
            req.token_ids.ids.extend([256, 72, 105])
            req.sampling.temperature = 0.0
            req.stopping.max_new_tokens = 6
            req.stopping.ignore_eos = True
            call = channel.unary_stream(f"/{SERVICE}/Generate",
                                        request_serializer=Request.SerializeToString,
                                        response_deserializer=Response.FromString)
            responses = list(call(req, timeout=harness.RPC_TIMEOUT_S))
            tokens = [t for r in responses for t in r.token_ids]
            self.assertEqual(len(tokens), 6)
            length = pool.FindEnumTypeByName("hybridserve.v1.FinishReason") \
                .values_by_name["FINISH_REASON_LENGTH"].number
            self.assertEqual(responses[-1].finish_reason, length)
            self.assertEqual(responses[-1].usage.completion_tokens, 6)

            # The same request through the generated stubs gives the same tokens.
            want = harness.generate(server.stub(), harness.request([256, 72, 105],
                                                                   max_new_tokens=6))
            self.assertEqual(tokens, want.token_ids)

            # A unary method too.
            method = service.FindMethodByName("ListModels")
            Request = message_factory.GetMessageClass(method.input_type)
            Response = message_factory.GetMessageClass(method.output_type)
            models = channel.unary_unary(f"/{SERVICE}/ListModels",
                                         request_serializer=Request.SerializeToString,
                                         response_deserializer=Response.FromString)(
                Request(), timeout=harness.RPC_TIMEOUT_S)
            self.assertEqual([m.name for m in models.models], [server.name])


if __name__ == "__main__":
    harness.main()
