#!/usr/bin/env python3
"""A request's and the server's life: health, cancellation and client
disconnects free KV blocks (read back through GetModel), deadlines, and SIGTERM
under load (every started stream completes; new requests get UNAVAILABLE; exit 0)."""
import subprocess
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import harness
from harness import pb

# Long generations: the tiny preset with a 32k context, so that a stream runs for
# seconds and is still running when the test acts on it.
LONG = 30000

server = None
model_dir = None


def setUpModule():
    global server, model_dir
    model_dir = harness.make_tiny_model("tiny_long", "--max_position_embeddings", "32768")
    server = harness.Server(model_dir).start()


def tearDownModule():
    server.stop()


def health_status(channel, service):
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=harness.RPC_TIMEOUT_S).status


class HealthTest(unittest.TestCase):
    def test_serving_when_ready(self):
        for service in ("", "hybridserve.v1.Inference"):
            with self.subTest(service=service):
                self.assertEqual(health_status(server.channel(), service),
                                 health_pb2.HealthCheckResponse.SERVING)

    def test_unknown_service_not_found(self):
        with self.assertRaises(grpc.RpcError) as e:
            health_status(server.channel(), "no.such.Service")
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)


class CancelTest(unittest.TestCase):
    def test_cancel_mid_stream_frees_blocks(self):
        stub = server.stub()
        total = harness.get_model(stub).load.total_kv_blocks
        self.assertGreater(total, 0)
        call = stub.Generate(harness.request([256, 5, 6, 7], max_new_tokens=LONG),
                             timeout=harness.RPC_TIMEOUT_S)
        got = 0
        for r in call:
            got += len(r.token_ids)
            if got >= 40:
                break
        load = harness.get_model(stub).load
        self.assertLess(load.free_kv_blocks, total, "a running stream holds no KV blocks")
        self.assertEqual(load.running_requests, 1)
        call.cancel()
        self.assertEqual(call.code(), grpc.StatusCode.CANCELLED)
        harness.wait_blocks_free(self, stub, what="after cancel")
        r = harness.generate(stub, harness.request([256, 1], max_new_tokens=3))
        self.assertEqual(len(r.token_ids), 3)

    def test_killed_client_process_frees_blocks(self):
        """hs_client streaming, killed (SIGKILL) mid-stream: the connection drops."""
        stub = server.stub()
        proc = subprocess.Popen(
            [harness.binary("hs_client"), "--server", server.address, "generate", "--json",
             "--prompt_ids", "256,9,8,7", "--temperature", "0", "--ignore_eos",
             "--max_new_tokens", str(LONG)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            for _ in range(20):
                self.assertTrue(proc.stdout.readline(), "hs_client ended early")
            self.assertEqual(harness.get_model(stub).load.running_requests, 1)
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        harness.wait_blocks_free(self, stub, what="after the client was killed")

    def test_many_cancels_leave_nothing(self):
        stub = server.stub()
        calls = [stub.Generate(harness.request([256, i, i + 1], max_new_tokens=2000),
                               timeout=harness.RPC_TIMEOUT_S) for i in range(8)]
        for c in calls:
            next(c)
        for c in calls:
            c.cancel()
        harness.wait_blocks_free(self, stub, what="after cancelling 8 streams")


class DeadlineTest(unittest.TestCase):
    def test_deadline_exceeded_and_blocks_freed(self):
        stub = server.stub()
        t0 = time.monotonic()
        tokens = 0
        with self.assertRaises(grpc.RpcError) as e:
            for r in stub.Generate(harness.request([256, 3, 4], max_new_tokens=LONG),
                                   timeout=2.0):
                tokens += len(r.token_ids)
        elapsed = time.monotonic() - t0
        self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED,
                         e.exception.details())
        self.assertGreater(tokens, 0, "no token streamed before the deadline")
        self.assertLess(elapsed, 10.0)
        harness.wait_blocks_free(self, stub, what="after the deadline")


class DrainTest(unittest.TestCase):
    """Its own server: SIGTERM while 8 streams run."""

    def test_sigterm_under_load(self):
        n_streams, n_tokens = 8, 400
        srv = harness.Server(model_dir, "--drain-timeout", "300", name="drain").start()
        try:
            stub = srv.stub()
            started = harness.Barrier()
            results = [None] * n_streams
            ended = [None] * n_streams

            def stream(i):
                req = harness.request([256, 40 + i, 50 + i], max_new_tokens=n_tokens)
                responses = []
                try:
                    for r in stub.Generate(req, timeout=harness.RPC_TIMEOUT_S):
                        if not responses:
                            started.signal()
                        responses.append(r)
                    results[i] = harness.Result(responses)
                except grpc.RpcError as e:
                    started.signal()
                    results[i] = e
                ended[i] = time.monotonic()

            with ThreadPoolExecutor(n_streams) as pool:
                futures = [pool.submit(stream, i) for i in range(n_streams)]
                self.assertTrue(started.wait_for(n_streams, timeout=harness.RPC_TIMEOUT_S), "streams did not start")
                running = harness.get_model(stub).load.running_requests
                srv.terminate()
                sigterm_at = time.monotonic()
                time.sleep(0.2)
                # A new request after SIGTERM, on a new connection.
                with grpc.insecure_channel(srv.address) as ch:
                    new_stub = pb_grpc_stub(ch)
                    with self.assertRaises(grpc.RpcError) as e:
                        harness.generate(new_stub, harness.request([256, 1], max_new_tokens=2),
                                         timeout=60)
                    self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE,
                                     e.exception.details())
                    try:
                        status = health_status(ch, "")
                        self.assertEqual(status, health_pb2.HealthCheckResponse.NOT_SERVING)
                    except grpc.RpcError as he:  # the port may be closed already
                        self.assertEqual(he.code(), grpc.StatusCode.UNAVAILABLE, he.details())
                for f in futures:
                    f.result()
            print(f"  SIGTERM with {running} streams running")
            self.assertGreater(running, 0, "streams ended before SIGTERM")
            for i, r in enumerate(results):
                self.assertIsInstance(r, harness.Result, f"stream {i}: {r}")
                self.assertEqual(len(r.token_ids), n_tokens, f"stream {i}")
                self.assertEqual(harness.finish_name(r.finish_reason), "FINISH_REASON_LENGTH",
                                 f"stream {i}")
            self.assertGreater(max(ended), sigterm_at, "every stream ended before SIGTERM")
            code = srv.wait()
            self.assertEqual(code, 0, f"exit code after SIGTERM\n{srv.log_tail()}")
        finally:
            srv.kill()

    def test_drain_timeout_ends_running_streams_unavailable(self):
        srv = harness.Server(model_dir, "--drain-timeout", "1", name="drain_timeout").start()
        try:
            stub = srv.stub()
            started = harness.Barrier()
            outcome = [None, None]

            def stream(i):
                responses = []
                try:
                    for r in stub.Generate(harness.request([256, 20 + i], max_new_tokens=LONG),
                                           timeout=harness.RPC_TIMEOUT_S):
                        if not responses:
                            started.signal()
                        responses.append(r)
                    outcome[i] = (grpc.StatusCode.OK, "", responses)
                except grpc.RpcError as e:
                    outcome[i] = (e.code(), e.details(), responses)

            threads = [threading.Thread(target=stream, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            self.assertTrue(started.wait_for(2, timeout=harness.RPC_TIMEOUT_S), "streams did not start")
            srv.terminate()
            t0 = time.monotonic()
            for t in threads:
                t.join(timeout=harness.RPC_TIMEOUT_S)
            self.assertLess(time.monotonic() - t0, 30, "streams outlived --drain-timeout 1")
            for i, (code, details, responses) in enumerate(outcome):
                self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, f"stream {i}: {details}")
                self.assertLess(len([t for r in responses for t in r.token_ids]), LONG)
                self.assertEqual(harness.finish_name(responses[-1].finish_reason),
                                 "FINISH_REASON_CANCELLED", f"stream {i}: last response")
            self.assertEqual(srv.wait(), 0, f"exit code after SIGTERM\n{srv.log_tail()}")
        finally:
            srv.kill()


def pb_grpc_stub(channel):
    return harness.pb_grpc.InferenceStub(channel)


if __name__ == "__main__":
    harness.main()
