#!/usr/bin/env python3
"""Limits (DESIGN.md section 5, issue 9): each is a flag with a default, `--help`
explains it, and a request beyond it gets INVALID_ARGUMENT or RESOURCE_EXHAUSTED
with a message naming the limit and its value; the next request is served.
Limits: gRPC message size, prompt tokens, new tokens, stop strings and their
length, logprobs N, concurrent streams per connection, waiting queue."""
import subprocess
import threading
import time
import unittest

import grpc

import harness
from harness import pb

MAX_MESSAGE_BYTES = 65536
MAX_INPUT_BYTES = 32768
MAX_PROMPT_TOKENS = 16
MAX_NEW_TOKENS = 24
MAX_STOP_STRINGS = 2
MAX_STOP_STRING_BYTES = 8
MAX_LOGPROBS = 3
MAX_STREAMS = 2
LONG = 30000

server = None
model_dir = None


def setUpModule():
    global server, model_dir
    model_dir = harness.make_tiny_model("tiny_long", "--max_position_embeddings", "32768")
    server = harness.Server(
        model_dir,
        "--max-message-bytes", str(MAX_MESSAGE_BYTES),
        "--max-input-bytes", str(MAX_INPUT_BYTES),
        "--max-prompt-tokens", str(MAX_PROMPT_TOKENS),
        "--max-new-tokens", str(MAX_NEW_TOKENS),
        "--default-max-new-tokens", "256",
        "--max-stop-strings", str(MAX_STOP_STRINGS),
        "--max-stop-string-bytes", str(MAX_STOP_STRING_BYTES),
        "--max-logprobs", str(MAX_LOGPROBS),
        "--max-streams-per-connection", str(MAX_STREAMS),
        name="limits").start()


def tearDownModule():
    server.stop()


def drain(call, started=None, out=None):
    """Reads `call` to the end in the background; records (code, tokens)."""
    tokens = 0
    try:
        for r in call:
            tokens += len(r.token_ids)
            if started is not None:
                started.signal()
                started = None
        code = grpc.StatusCode.OK
    except grpc.RpcError as e:
        code = e.code()
        if started is not None:
            started.signal()
    if out is not None:
        out.append((code, tokens))


class LimitsTest(unittest.TestCase):
    def assert_refused(self, req, code, names, value, what):
        stub = server.stub()
        with self.assertRaises(grpc.RpcError, msg=what) as e:
            harness.generate(stub, req)
        details = e.exception.details() or ""
        print(f"  {what}: {e.exception.code().name}: {details}")
        self.assertEqual(e.exception.code(), code, f"{what}: {details}")
        self.assertTrue(any(n in details for n in names), f"{what}: '{details}' names none of {names}")
        self.assertIn(str(value), details, f"{what}: '{details}' gives no limit value {value}")
        # The next request is served.
        r = harness.generate(stub, harness.request([256, 72, 105], max_new_tokens=2))
        self.assertEqual(len(r.token_ids), 2, f"after {what}")

    def test_help_explains_every_limit(self):
        out = subprocess.run([harness.binary("hybridserve"), "--help"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=60).stdout.decode()
        for flag in ("--max-message-bytes", "--max-prompt-tokens", "--max-new-tokens",
                     "--max-stop-strings", "--max-stop-string-bytes", "--max-logprobs",
                     "--max-streams-per-connection", "--max-queue", "--max-input-bytes"):
            with self.subTest(flag=flag):
                self.assertIn(flag + " (default: ", out)

    def test_bad_limit_flags_are_refused(self):
        t0 = time.monotonic()
        for args, flag in ((["--max-message-bytes", "100"], "--max-message-bytes"),
                           (["--max-prompt-tokens", "-1"], "--max-prompt-tokens"),
                           (["--max-new-tokens", "0"], "--max-new-tokens"),
                           (["--max-streams-per-connection", "0"], "--max-streams-per-connection")):
            with self.subTest(flag=flag):
                proc = subprocess.run([harness.binary("hybridserve"), "--model", str(model_dir),
                                       "--port", "0", "--metrics-port", "-1", *args],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
                self.assertNotEqual(proc.returncode, 0)
                self.assertIn(flag, proc.stdout.decode(errors="replace"))
        print(f"  bad flags refused in {time.monotonic() - t0:.1f} s")

    def test_message_size(self):
        # A message beyond --max-message-bytes never reaches the service: gRPC
        # refuses it with both sizes.
        req = harness.request([300] * (MAX_MESSAGE_BYTES // 2 + 100), max_new_tokens=1)
        self.assertGreater(req.ByteSize(), MAX_MESSAGE_BYTES)
        self.assert_refused(req, grpc.StatusCode.RESOURCE_EXHAUSTED, ("larger than max",),
                            MAX_MESSAGE_BYTES, "message above --max-message-bytes")
        # Text below the message limit but above --max-input-bytes: ours.
        self.assert_refused(harness.request(text="a" * (MAX_INPUT_BYTES + 1)),
                            grpc.StatusCode.INVALID_ARGUMENT, ("--max-input-bytes",),
                            MAX_INPUT_BYTES, "text above --max-input-bytes")

    def test_prompt_tokens(self):
        stub = server.stub()
        self.assert_refused(harness.request([256] + [65] * MAX_PROMPT_TOKENS, max_new_tokens=2),
                            grpc.StatusCode.INVALID_ARGUMENT, ("--max-prompt-tokens",),
                            MAX_PROMPT_TOKENS, "token_ids above --max-prompt-tokens")
        # Text: the byte-level tokenizer gives BOS + one token per byte.
        self.assert_refused(harness.request(text="x" * MAX_PROMPT_TOKENS, max_new_tokens=2),
                            grpc.StatusCode.INVALID_ARGUMENT, ("--max-prompt-tokens",),
                            MAX_PROMPT_TOKENS, "text above --max-prompt-tokens")
        r = harness.generate(stub, harness.request([256] + [65] * (MAX_PROMPT_TOKENS - 1),
                                                   max_new_tokens=2))
        self.assertEqual(len(r.token_ids), 2, "a prompt at --max-prompt-tokens is served")

    def test_new_tokens(self):
        stub = server.stub()
        self.assert_refused(harness.request([256, 1], max_new_tokens=MAX_NEW_TOKENS + 1),
                            grpc.StatusCode.INVALID_ARGUMENT, ("--max-new-tokens",),
                            MAX_NEW_TOKENS, "max_new_tokens above --max-new-tokens")
        r = harness.generate(stub, harness.request([256, 1], max_new_tokens=MAX_NEW_TOKENS))
        self.assertEqual(len(r.token_ids), MAX_NEW_TOKENS)
        # Unset: --default-max-new-tokens (256) is capped by --max-new-tokens.
        r = harness.generate(stub, harness.request([256, 1], max_new_tokens=None))
        self.assertEqual(len(r.token_ids), MAX_NEW_TOKENS)

    def test_stop_strings(self):
        stub = server.stub()
        self.assert_refused(harness.request([256, 1], stop=["a", "b", "c"]),
                            grpc.StatusCode.INVALID_ARGUMENT, ("--max-stop-strings",),
                            MAX_STOP_STRINGS, "stop strings above --max-stop-strings")
        self.assert_refused(harness.request([256, 1], stop=["z" * (MAX_STOP_STRING_BYTES + 1)]),
                            grpc.StatusCode.INVALID_ARGUMENT, ("--max-stop-string-bytes",),
                            MAX_STOP_STRING_BYTES, "stop string above --max-stop-string-bytes")
        r = harness.generate(stub, harness.request(
            [256, 1], max_new_tokens=4, stop=["q" * MAX_STOP_STRING_BYTES, "\x01\x02"]))
        self.assertGreaterEqual(len(r.token_ids), 1, "stop strings at the limits are served")

    def test_logprobs(self):
        stub = server.stub()
        self.assert_refused(harness.request([256, 1], logprobs=MAX_LOGPROBS + 1),
                            grpc.StatusCode.INVALID_ARGUMENT, ("--max-logprobs",),
                            MAX_LOGPROBS, "logprobs above --max-logprobs")
        self.assert_refused(harness.request([256, 1], prompt_logprobs=MAX_LOGPROBS + 1),
                            grpc.StatusCode.INVALID_ARGUMENT, ("--max-logprobs",),
                            MAX_LOGPROBS, "prompt_logprobs above --max-logprobs")
        r = harness.generate(stub, harness.request([256, 1], max_new_tokens=2,
                                                   logprobs=MAX_LOGPROBS))
        self.assertEqual([len(lp.top) for lp in r.logprobs], [MAX_LOGPROBS] * 2)


class ConnectionLimitsTest(unittest.TestCase):
    """Its own server: --max-num-seqs 1 --max-queue 1 --max-streams-per-connection 2."""

    @classmethod
    def setUpClass(cls):
        cls.srv = harness.Server(model_dir, "--max-num-seqs", "1", "--max-queue", "1",
                                 "--max-streams-per-connection", str(MAX_STREAMS),
                                 name="limits_conn").start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def connection(self):
        """A channel on a connection of its own (gRPC shares one connection among
        channels with the same arguments unless told not to)."""
        return grpc.insecure_channel(self.srv.address,
                                     options=[("grpc.use_local_subchannel_pool", 1)])

    def start_long_streams(self, stub):
        """MAX_STREAMS long streams read in the background: one runs, one waits.
        The second starts once the first runs (--max-queue counts requests not
        yet admitted, so two arriving together would fill a queue of one)."""
        started = harness.Barrier()
        calls = [stub.Generate(harness.request([256, 7, 0], max_new_tokens=LONG),
                               timeout=harness.RPC_TIMEOUT_S)]
        threading.Thread(target=drain, args=(calls[0], started), daemon=True).start()
        self.assertTrue(started.wait_for(1, timeout=harness.RPC_TIMEOUT_S), "no stream started")
        for i in range(1, MAX_STREAMS):
            calls.append(stub.Generate(harness.request([256, 7, i], max_new_tokens=LONG),
                                       timeout=harness.RPC_TIMEOUT_S))
            threading.Thread(target=drain, args=(calls[-1],), daemon=True).start()
        with self.connection() as other:
            deadline = time.monotonic() + 60
            while True:
                load = harness.get_model(harness.pb_grpc.InferenceStub(other)).load
                if (load.running_requests, load.waiting_requests) == (1, MAX_STREAMS - 1):
                    return calls
                self.assertLess(time.monotonic(), deadline, f"streams not placed: {load}")
                time.sleep(0.01)

    def finish(self, calls):
        for c in calls:
            c.cancel()
        stub = self.srv.stub()  # the shared connection is free again
        harness.wait_blocks_free(self, stub, what="after cancelling the streams")
        r = harness.generate(stub, harness.request([256, 1], max_new_tokens=2))
        self.assertEqual(len(r.token_ids), 2)

    def test_streams_per_connection(self):
        """With two streams open on a connection, a third call on it waits in the
        client (HTTP/2 MAX_CONCURRENT_STREAMS) until one ends, while another
        connection is served at once."""
        with self.connection() as ch, self.connection() as other:
            stub = harness.pb_grpc.InferenceStub(ch)
            calls = self.start_long_streams(stub)
            third_done = threading.Event()

            def third():
                stub.GetModel(pb.GetModelRequest(), timeout=harness.RPC_TIMEOUT_S)
                third_done.set()

            threading.Thread(target=third, daemon=True).start()
            # Another connection is answered while the third call waits.
            harness.get_model(harness.pb_grpc.InferenceStub(other))
            self.assertFalse(third_done.wait(1.0),
                             "a third call on the connection ran beside two open streams")
            calls[0].cancel()
            self.assertTrue(third_done.wait(60), "the third call did not run once a stream ended")
            self.finish(calls)

    def test_queue_full_names_the_limit(self):
        with self.connection() as ch, self.connection() as other:
            calls = self.start_long_streams(harness.pb_grpc.InferenceStub(ch))
            with self.assertRaises(grpc.RpcError) as e:
                harness.generate(harness.pb_grpc.InferenceStub(other),
                                 harness.request([256, 1], max_new_tokens=1))
            details = e.exception.details() or ""
            print(f"  queue full: {e.exception.code().name}: {details}")
            self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, details)
            self.assertIn("--max-queue 1", details)
            self.finish(calls)


if __name__ == "__main__":
    harness.main()
