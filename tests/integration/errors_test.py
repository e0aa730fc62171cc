#!/usr/bin/env python3
"""Bad requests (DESIGN.md section 5): each gets its status with a message that
names the field (and the limit, where there is one), and the next request is
served normally. Also a full waiting queue (RESOURCE_EXHAUSTED)."""
import threading
import unittest

import grpc

import harness
from harness import pb

MAX_MODEL_LEN = 64
MAX_LOGPROBS = 5
VOCAB = 512  # the tiny preset

server = None


def setUpModule():
    global server
    server = harness.Server(harness.make_tiny_model("tiny"), "--max-model-len", str(MAX_MODEL_LEN),
                            "--max-logprobs", str(MAX_LOGPROBS)).start()


def tearDownModule():
    server.stop()


def bad(code, fields, limits=(), **request_fields):
    """A case: the request, the status, words one of which the message must hold
    (the field), and words one of which it must hold too (the limit)."""
    return code, fields, limits, request_fields


INPUT = ("text", "token_ids", "input", "prompt")
LONG = ("prompt", "max_model_len", "max-model-len", "token")

# name -> (status, field names, limits, request fields)
GENERATE_CASES = {
    "empty text": bad(grpc.StatusCode.INVALID_ARGUMENT, INPUT, text=""),
    "empty token_ids": bad(grpc.StatusCode.INVALID_ARGUMENT, INPUT, ids=[]),
    "no input": bad(grpc.StatusCode.INVALID_ARGUMENT, INPUT),
    "prompt beyond max-model-len": bad(grpc.StatusCode.INVALID_ARGUMENT, LONG,
                                       (str(MAX_MODEL_LEN),),
                                       ids=[256] + [65] * MAX_MODEL_LEN, max_new_tokens=1),
    "prompt + max_new_tokens beyond max-model-len": bad(
        grpc.StatusCode.INVALID_ARGUMENT, LONG + ("max_new_tokens",), (str(MAX_MODEL_LEN),),
        ids=[256] + [65] * 59, max_new_tokens=10),
    "max_new_tokens 0": bad(grpc.StatusCode.INVALID_ARGUMENT, ("max_new_tokens",),
                            ids=[256, 1], max_new_tokens=0),
    "max_new_tokens -3": bad(grpc.StatusCode.INVALID_ARGUMENT, ("max_new_tokens",),
                             ids=[256, 1], max_new_tokens=-3),
    "temperature -0.5": bad(grpc.StatusCode.INVALID_ARGUMENT, ("temperature",),
                            ids=[256, 1], temperature=-0.5),
    "top_p 0": bad(grpc.StatusCode.INVALID_ARGUMENT, ("top_p",), ids=[256, 1], top_p=0.0),
    "top_p 1.5": bad(grpc.StatusCode.INVALID_ARGUMENT, ("top_p",), ids=[256, 1], top_p=1.5),
    "top_p -0.1": bad(grpc.StatusCode.INVALID_ARGUMENT, ("top_p",), ids=[256, 1], top_p=-0.1),
    "unknown model": bad(grpc.StatusCode.NOT_FOUND, ("no-such-model",), ids=[256, 1],
                         model="no-such-model"),
    "token id = vocab": bad(grpc.StatusCode.INVALID_ARGUMENT, ("token",),
                            (str(VOCAB), str(VOCAB - 1)), ids=[256, VOCAB]),
    "token id -1": bad(grpc.StatusCode.INVALID_ARGUMENT, ("token",), ids=[256, -1]),
    "token id 2^31-1": bad(grpc.StatusCode.INVALID_ARGUMENT, ("token",), ids=[2**31 - 1]),
    "oversize text": bad(grpc.StatusCode.INVALID_ARGUMENT, ("text", "input", "prompt"),
                         ("1048576", "1 MiB", "1MiB"), text="a" * (2 << 20)),
    # Other bad field values of the API's documented ranges.
    "top_k -2": bad(grpc.StatusCode.INVALID_ARGUMENT, ("top_k",), ids=[256, 1], top_k=-2),
    "min_p 1.5": bad(grpc.StatusCode.INVALID_ARGUMENT, ("min_p",), ids=[256, 1], min_p=1.5),
    "repetition_penalty 0": bad(grpc.StatusCode.INVALID_ARGUMENT, ("repetition_penalty",),
                                ids=[256, 1], repetition_penalty=0.0),
    "presence_penalty 2.5": bad(grpc.StatusCode.INVALID_ARGUMENT, ("presence_penalty",),
                                ids=[256, 1], presence_penalty=2.5),
    "frequency_penalty -3": bad(grpc.StatusCode.INVALID_ARGUMENT, ("frequency_penalty",),
                                ids=[256, 1], frequency_penalty=-3.0),
    "min_new_tokens -1": bad(grpc.StatusCode.INVALID_ARGUMENT, ("min_new_tokens",),
                             ids=[256, 1], min_new_tokens=-1),
    "logprobs above --max-logprobs": bad(grpc.StatusCode.INVALID_ARGUMENT, ("logprobs",),
                                         (str(MAX_LOGPROBS),), ids=[256, 1],
                                         logprobs=MAX_LOGPROBS + 1),
    "logprobs -1": bad(grpc.StatusCode.INVALID_ARGUMENT, ("logprobs",), ids=[256, 1],
                       logprobs=-1),
    "prompt_logprobs above --max-logprobs": bad(grpc.StatusCode.INVALID_ARGUMENT,
                                                ("prompt_logprobs",), (str(MAX_LOGPROBS),),
                                                ids=[256, 1], prompt_logprobs=MAX_LOGPROBS + 1),
}


class BadRequestTest(unittest.TestCase):
    def assert_status(self, call, code, fields, limits, what):
        try:
            call()
        except grpc.RpcError as e:
            got_code, details = e.code(), e.details() or ""
        else:
            self.fail(f"{what}: succeeded, want {code.name}")
        print(f"  {what}: {got_code.name}: {details}")
        self.assertEqual(got_code, code, f"{what}: got {got_code.name} '{details}', want {code.name}")
        low = details.lower()
        self.assertTrue(any(f.lower() in low for f in fields),
                        f"{what}: message '{details}' names none of {fields}")
        if limits:
            self.assertTrue(any(l in details for l in limits),
                            f"{what}: message '{details}' gives no limit of {limits}")

    def assert_served(self, stub, what):
        try:
            r = harness.generate(stub, harness.request([256, 72, 105], max_new_tokens=2))
        except grpc.RpcError as e:
            self.fail(f"normal request after '{what}' failed: {e.code().name} {e.details()}")
        self.assertEqual(len(r.token_ids), 2, f"after '{what}'")

    def test_generate_bad_requests(self):
        stub = server.stub()
        for name, (code, fields, limits, fields_in) in GENERATE_CASES.items():
            with self.subTest(case=name):
                kw = dict(fields_in)
                kw.setdefault("max_new_tokens", 4)
                req = harness.request(**kw)
                self.assert_status(lambda: harness.generate(stub, req), code, fields, limits, name)
                self.assert_served(stub, name)
        harness.wait_blocks_free(self, stub, what="after bad requests")

    def test_ids_at_the_limits_are_served(self):
        # Every id below the model's vocabulary is a valid prompt token, text or not.
        stub = server.stub()
        r = harness.generate(stub, harness.request([0, 255, 256, 257, 300, VOCAB - 1],
                                                   max_new_tokens=2))
        self.assertEqual(len(r.token_ids), 2)
        r = harness.generate(stub, harness.request([256] + [65] * (MAX_MODEL_LEN - 2),
                                                   max_new_tokens=1))
        self.assertEqual(len(r.token_ids), 1, "prompt + max_new_tokens == --max-model-len")

    def test_other_rpcs_bad_requests(self):
        stub = server.stub()
        cases = {
            "Tokenize unknown model": (lambda: stub.Tokenize(
                pb.TokenizeRequest(model="nope", text="hi"), timeout=harness.RPC_TIMEOUT_S),
                grpc.StatusCode.NOT_FOUND, ("nope",), ()),
            "Detokenize unknown model": (lambda: stub.Detokenize(
                pb.DetokenizeRequest(model="nope", token_ids=[65]), timeout=harness.RPC_TIMEOUT_S),
                grpc.StatusCode.NOT_FOUND, ("nope",), ()),
            "GetModel unknown model": (lambda: stub.GetModel(
                pb.GetModelRequest(model="nope"), timeout=harness.RPC_TIMEOUT_S),
                grpc.StatusCode.NOT_FOUND, ("nope",), ()),
            "Detokenize id out of range": (lambda: stub.Detokenize(
                pb.DetokenizeRequest(token_ids=[65, VOCAB + 7]), timeout=harness.RPC_TIMEOUT_S),
                grpc.StatusCode.INVALID_ARGUMENT, ("token",), ()),
            "Tokenize oversize text": (lambda: stub.Tokenize(
                pb.TokenizeRequest(text="b" * (2 << 20)), timeout=harness.RPC_TIMEOUT_S),
                grpc.StatusCode.INVALID_ARGUMENT, ("text", "input"), ()),
        }
        for name, (call, code, fields, limits) in cases.items():
            with self.subTest(case=name):
                self.assert_status(call, code, fields, limits, name)
                self.assert_served(stub, name)


def drain(call, started):
    try:
        for _ in call:
            if started is not None:
                started.signal()
                started = None
    except grpc.RpcError:
        pass


class QueueFullTest(unittest.TestCase):
    """--max-num-seqs 1 --max-queue 1: one runs, one waits, the third is refused."""

    def test_queue_full_is_resource_exhausted(self):
        model = harness.make_tiny_model("tiny_long", "--max_position_embeddings", "32768")
        srv = harness.Server(model, "--max-num-seqs", "1", "--max-queue", "1").start()
        try:
            stub = srv.stub()
            long_req = harness.request([256, 1, 2], max_new_tokens=30000)
            # Both streams are read to the end in the background: a client that does
            # not read falls behind and is cancelled (--outbox-events).
            first = stub.Generate(long_req, timeout=harness.RPC_TIMEOUT_S)
            started = harness.Barrier()
            threading.Thread(target=drain, args=(first, started), daemon=True).start()
            self.assertTrue(started.wait_for(1, timeout=harness.RPC_TIMEOUT_S), "first stream did not start")
            second = stub.Generate(long_req, timeout=harness.RPC_TIMEOUT_S)
            threading.Thread(target=drain, args=(second, None), daemon=True).start()
            for _ in range(200):
                if harness.get_model(stub).load.waiting_requests == 1:
                    break
                threading.Event().wait(0.01)
            load = harness.get_model(stub).load
            self.assertEqual((load.running_requests, load.waiting_requests), (1, 1), load)
            with self.assertRaises(grpc.RpcError) as e:
                harness.generate(stub, harness.request([256, 1], max_new_tokens=1))
            self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED,
                             e.exception.details())
            first.cancel()
            second.cancel()
            harness.wait_blocks_free(self, stub, what="after cancelling the queue")
            r = harness.generate(stub, harness.request([256, 1], max_new_tokens=2))
            self.assertEqual(len(r.token_ids), 2)
        finally:
            srv.stop()


if __name__ == "__main__":
    harness.main()
