#!/usr/bin/env python3
"""Faults against the real server (issue 9): streams cancelled at random points,
deadlines expiring in the queue and mid-generation, clients that never read
their stream, a KV exhaustion storm, malformed checkpoints at start-up, and
SIGTERM mid-load with the drain timeout expiring.

After each fault on a running server: every KV block and state slot is free
again (GetModel's live load equals the counts read at start-up) and a fresh
greedy request gives the same tokens as the same request before any fault."""
import random
import shutil
import subprocess
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

import harness
from harness import pb

LONG = 30000           # tokens: a stream still running when the test acts on it
# More than the probe's 12 tokens (+ the final event): a probe's stream fits
# even if its reader falls behind a fast engine, while a stream that is never
# read (30,000 tokens) fills it.
OUTBOX_EVENTS = 16
MAX_NUM_SEQS = 4
PROBE = [256, 10, 20, 30, 40]  # the fresh request compared before and after

hybrid = None      # harness.Server: a tiny Bamba (attention and Mamba-2 layers)
initial = None     # its GetModel load at start-up
probe_tokens = None


def hybrid_model():
    """A tiny Bamba with a 32k context (LONG tokens take many seconds)."""
    return harness.make_tiny_model("tiny_bamba_32k", "--architecture", "bamba",
                                   "--max_position_embeddings", "32768")


def setUpModule():
    global hybrid, initial, probe_tokens
    model = hybrid_model()
    hybrid = harness.Server(model, "--max-num-seqs", str(MAX_NUM_SEQS),
                            name="faults_hybrid").start()
    stub = hybrid.stub()
    initial = harness.get_model(stub).load
    assert initial.total_kv_blocks > 0 and initial.total_state_slots > 0, initial
    assert initial.free_kv_blocks == initial.total_kv_blocks, initial
    assert initial.free_state_slots == initial.total_state_slots, initial
    probe_tokens = harness.generate(stub, harness.request(PROBE, max_new_tokens=12)).token_ids


def tearDownModule():
    hybrid.stop()


def wait_pools_back(test, srv, load0, probe_ids, probe=PROBE, what="", timeout_s=60.0):
    """Waits until the free blocks and slots equal `load0`'s and nothing runs or
    waits, then checks that `probe` (greedy) still gives `probe_ids`."""
    stub = srv.stub()
    deadline = time.monotonic() + timeout_s
    while True:
        load = harness.get_model(stub).load
        if (load.free_kv_blocks == load0.free_kv_blocks
                and load.free_state_slots == load0.free_state_slots
                and load.running_requests == 0 and load.waiting_requests == 0):
            break
        if time.monotonic() > deadline:
            test.fail(f"{what}: after {timeout_s} s the load is {load}, want free blocks "
                      f"{load0.free_kv_blocks}, free slots {load0.free_state_slots}, idle")
        time.sleep(0.05)
    r = harness.generate(stub, harness.request(probe, max_new_tokens=len(probe_ids)))
    test.assertEqual(r.token_ids, list(probe_ids), f"{what}: the fresh request's tokens changed")
    print(f"  {what}: free blocks {load.free_kv_blocks}/{load.total_kv_blocks}, free slots "
          f"{load.free_state_slots}/{load.total_state_slots}; fresh request unchanged")


class Reader:
    """Reads a stream to its end on a thread; keeps the responses and the status."""

    def __init__(self, call):
        self.call = call
        self.responses = []
        self.code = None
        self.details = ""
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for r in self.call:
                self.responses.append(r)
                self.started.set()
            self.code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            self.code, self.details = e.code(), e.details() or ""
        self.started.set()

    def tokens(self):
        return [t for r in self.responses for t in r.token_ids]

    def join(self, timeout=harness.RPC_TIMEOUT_S):
        self.thread.join(timeout)
        return not self.thread.is_alive()


class CancelStormTest(unittest.TestCase):
    def test_500_streams_cancelled_at_random_points(self):
        rng = random.Random(20261129)
        plans = []
        for i in range(500):
            prompt = [256] + [rng.randrange(0, 256) for _ in range(rng.randrange(1, 40))]
            kind = rng.random()
            # Cancel before reading anything (often still queued), after a short
            # wait, or after reading a random number of responses.
            when = ("now" if kind < 0.15 else "sleep" if kind < 0.3 else "read")
            plans.append((prompt, when, rng.randrange(0, 20), rng.random() * 0.02))
        stub = hybrid.stub()
        outcomes = []
        lock = threading.Lock()

        def one(plan):
            prompt, when, n_read, pause = plan
            call = stub.Generate(harness.request(prompt, max_new_tokens=LONG),
                                 timeout=harness.RPC_TIMEOUT_S)
            got = 0
            if when == "sleep":
                time.sleep(pause)
            elif when == "read":
                for r in call:
                    got += len(r.token_ids)
                    if got > n_read:
                        break
            call.cancel()
            code = call.code()
            with lock:
                outcomes.append((when, code, got))

        t0 = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, plans))
        elapsed = time.monotonic() - t0
        codes = {}
        for _, code, _ in outcomes:
            codes[code.name] = codes.get(code.name, 0) + 1
        print(f"  500 streams cancelled in {elapsed:.1f} s: {codes}")
        self.assertEqual(len(outcomes), 500)
        self.assertEqual(codes, {"CANCELLED": 500})
        wait_pools_back(self, hybrid, initial, probe_tokens, what="after 500 cancels")


class DeadlineTest(unittest.TestCase):
    def test_deadline_mid_generation(self):
        stub = hybrid.stub()
        got = 0
        with self.assertRaises(grpc.RpcError) as e:
            for r in stub.Generate(harness.request([256, 3, 4], max_new_tokens=LONG), timeout=3.0):
                got += len(r.token_ids)
        self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED, e.exception.details())
        self.assertGreater(got, 0, "no token before the deadline: not mid-generation")
        self.assertLess(got, LONG)
        wait_pools_back(self, hybrid, initial, probe_tokens, what="after a deadline mid-generation")

    def test_deadline_in_the_queue(self):
        stub = hybrid.stub()
        # Fill every running place with long streams (read in the background).
        long = [Reader(stub.Generate(harness.request([256, 50 + i], max_new_tokens=LONG),
                                     timeout=harness.RPC_TIMEOUT_S)) for i in range(MAX_NUM_SEQS)]
        try:
            for r in long:
                self.assertTrue(r.started.wait(harness.RPC_TIMEOUT_S))
            got = 0
            t0 = time.monotonic()
            with self.assertRaises(grpc.RpcError) as e:
                for r in stub.Generate(harness.request([256, 9], max_new_tokens=4), timeout=1.0):
                    got += len(r.token_ids)
            self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED,
                             e.exception.details())
            self.assertEqual(got, 0, "the queued request ran before its deadline")
            # The server drops the expired request from its queue while the
            # long streams still run.
            deadline = time.monotonic() + 60
            while True:
                load = harness.get_model(stub).load
                if load.waiting_requests == 0:
                    break
                self.assertLess(time.monotonic(), deadline, f"expired request still queued: {load}")
                time.sleep(0.02)
            self.assertEqual(load.running_requests, MAX_NUM_SEQS, load)
            print(f"  queued request expired after {time.monotonic() - t0:.2f} s; "
                  f"{load.running_requests} still running")
        finally:
            for r in long:
                r.call.cancel()
            for r in long:
                self.assertTrue(r.join())
        wait_pools_back(self, hybrid, initial, probe_tokens, what="after a deadline in the queue")


class SlowClientTest(unittest.TestCase):
    """Its own server: after clients that never read, it must still drain and
    exit promptly on SIGTERM (a call the server never finishes would block
    its shutdown)."""

    def test_client_that_never_reads_is_cancelled_and_others_unaffected(self):
        srv = harness.Server(hybrid_model(), "--max-num-seqs", str(MAX_NUM_SEQS),
                             "--outbox-events", str(OUTBOX_EVENTS), name="faults_slow").start()
        try:
            load0 = harness.get_model(srv.stub()).load
            # A channel of its own whose flow-control window does not grow: once
            # the server's writes stop completing, the outbox (--outbox-events) fills.
            with grpc.insecure_channel(srv.address, options=[("grpc.http2.bdp_probe", 0),
                                                             ("grpc.use_local_subchannel_pool", 1)]) as ch:
                idle_stub = harness.pb_grpc.InferenceStub(ch)
                # Large responses (top-20 logprobs each) fill the window sooner.
                stuck = [idle_stub.Generate(harness.request([256, 60 + i], max_new_tokens=LONG,
                                                            logprobs=20),
                                            timeout=harness.RPC_TIMEOUT_S) for i in range(2)]
                try:
                    # A well-behaved client meanwhile: full length, the same tokens.
                    reader = Reader(srv.stub().Generate(
                        harness.request(PROBE, max_new_tokens=len(probe_tokens)),
                        timeout=harness.RPC_TIMEOUT_S))
                    self.assertTrue(reader.join())
                    self.assertEqual(reader.code, grpc.StatusCode.OK, reader.details)
                    self.assertEqual(reader.tokens(), list(probe_tokens))
                    # The server ends the stuck streams on its own (the clients have
                    # not cancelled): everything is freed while their calls are open.
                    t0 = time.monotonic()
                    wait_pools_back(self, srv, load0, probe_tokens,
                                    what="while two clients never read", timeout_s=120)
                    print(f"  stuck streams ended by the server within "
                          f"{time.monotonic() - t0:.1f} s")
                finally:
                    for c in stuck:
                        c.cancel()
            wait_pools_back(self, srv, load0, probe_tokens, what="after the stuck clients left")
            srv.terminate()
            t0 = time.monotonic()
            self.assertEqual(srv.wait(timeout=60), 0, srv.log_tail())
            print(f"  exit 0 {time.monotonic() - t0:.1f} s after SIGTERM")
        finally:
            srv.kill()


def scrape(port, name):
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


class KvStormTest(unittest.TestCase):
    def test_kv_exhaustion_storm(self):
        # Tiny Llama: 512 bytes of KV per token, 16-token blocks of 8 KiB. 24
        # blocks (384 tokens) while each request grows to ~190 tokens: they
        # cannot all fit, so running ones are preempted and recomputed.
        model = harness.make_tiny_model("tiny")
        srv = harness.Server(model, "--kv-cache-bytes", str(24 * 8192), "--max-model-len", "256",
                             "--max-num-seqs", "8", "--max-queue", "6",
                             "--metrics-port", "0",
                             name="faults_storm").start()
        try:
            stub = srv.stub()
            load0 = harness.get_model(stub).load
            self.assertLessEqual(load0.total_kv_blocks, 32, load0)
            probe = harness.generate(stub, harness.request(PROBE, max_new_tokens=12)).token_ids
            rng = random.Random(7)
            n, new_tokens = 16, 140
            prompts = [[256] + [rng.randrange(0, 256) for _ in range(rng.randrange(20, 50))]
                       for _ in range(n)]
            readers = [Reader(stub.Generate(harness.request(p, max_new_tokens=new_tokens),
                                            timeout=harness.RPC_TIMEOUT_S)) for p in prompts]
            for i, r in enumerate(readers):
                self.assertTrue(r.join(), f"request {i} hangs")
            served = refused = 0
            for i, r in enumerate(readers):
                if r.code == grpc.StatusCode.OK:
                    served += 1
                    self.assertEqual(len(r.tokens()), new_tokens, f"request {i}")
                    self.assertEqual(harness.finish_name(r.responses[-1].finish_reason),
                                     "FINISH_REASON_LENGTH", f"request {i}")
                else:
                    # Section 5: a full queue is RESOURCE_EXHAUSTED; nothing else.
                    refused += 1
                    self.assertEqual(r.code, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                     f"request {i}: {r.details}")
                    self.assertIn("--max-queue", r.details)
            port = int(srv.ready_file.read_text().split()[1])
            preemptions = scrape(port, "hybridserve_preemptions_total")
            self.assertGreater(preemptions, 0, "the storm preempted nothing")
            print(f"  storm: {served} served, {refused} refused (queue full), "
                  f"preemptions {int(preemptions)}")
            self.assertGreater(served, 0)
            wait_pools_back(self, srv, load0, probe, what="after the KV storm")
        finally:
            srv.stop()


class BadCheckpointTest(unittest.TestCase):
    """A malformed checkpoint is refused at start-up: a message naming the
    file, a non-zero exit, never a crash or a server that reports ready."""

    def start_and_expect_failure(self, model_dir, words, what):
        ready = Path(model_dir).parent / f"ready_{Path(model_dir).name}"
        proc = subprocess.run([harness.binary("hybridserve"), "--model", str(model_dir),
                               "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
                               "--threads", "1", "--kv-cache-bytes", str(8 << 20),
                               "--ready-file", str(ready)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=harness.READY_TIMEOUT_S)
        out = proc.stdout.decode(errors="replace")
        last = out.strip().splitlines()[-1] if out.strip() else ""
        print(f"  {what}: exit {proc.returncode}: {last}")
        self.assertGreater(proc.returncode, 0, f"{what}: exit {proc.returncode} (a signal is < 0)\n{out}")
        self.assertFalse(ready.exists(), f"{what}: reported ready")
        self.assertIn("error", last.lower(), f"{what}: no error message\n{out}")
        self.assertTrue(any(w in last for w in words), f"{what}: '{last}' names none of {words}")

    def copy_model(self, name):
        src = harness.make_tiny_model("tiny")
        dst = Path(src).parent / name
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
        return dst

    def test_truncated_safetensors(self):
        m = self.copy_model("bad_truncated")
        files = sorted(m.glob("*.safetensors"))
        self.assertTrue(files)
        for f in files:
            data = f.read_bytes()
            f.write_bytes(data[: len(data) // 2])
        self.start_and_expect_failure(m, ("safetensors",), "truncated safetensors")

    def test_truncated_safetensors_header(self):
        m = self.copy_model("bad_header")
        f = sorted(m.glob("*.safetensors"))[0]
        f.write_bytes(f.read_bytes()[:20])
        self.start_and_expect_failure(m, ("safetensors",), "safetensors cut inside its header")

    def test_bad_config_json(self):
        m = self.copy_model("bad_config")
        (m / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], "hidden_size": ')
        self.start_and_expect_failure(m, ("config.json",), "config.json cut short")

    def test_config_json_with_bad_values(self):
        m = self.copy_model("bad_config_values")
        text = (m / "config.json").read_text()
        (m / "config.json").write_text(text.replace('"num_attention_heads": 4',
                                                    '"num_attention_heads": -4'))
        self.assertNotEqual(text, (m / "config.json").read_text())
        self.start_and_expect_failure(m, ("config.json", "num_attention_heads"),
                                      "config.json with negative heads")

    def test_missing_tokenizer_json(self):
        m = self.copy_model("bad_no_tokenizer")
        (m / "tokenizer.json").unlink()
        self.start_and_expect_failure(m, ("tokenizer.json",), "missing tokenizer.json")


class DrainTimeoutUnderLoadTest(unittest.TestCase):
    def test_sigterm_mid_load_with_drain_timeout_expiring(self):
        srv = harness.Server(hybrid_model(), "--max-num-seqs", "3", "--drain-timeout", "1",
                             name="faults_drain").start()
        try:
            stub = srv.stub()
            n = 8  # 3 running, 5 waiting
            readers = [Reader(stub.Generate(harness.request([256, 70 + i], max_new_tokens=LONG),
                                            timeout=harness.RPC_TIMEOUT_S)) for i in range(n)]
            deadline = time.monotonic() + 120
            while True:
                load = harness.get_model(stub).load
                if (load.running_requests, load.waiting_requests) == (3, n - 3):
                    break
                if time.monotonic() > deadline or any(r.code is not None for r in readers):
                    self.fail(f"load never reached {n}: {load}; streams: "
                              f"{[(r.code, r.details, len(r.tokens())) for r in readers]}")
                time.sleep(0.02)
            srv.terminate()
            t0 = time.monotonic()
            for i, r in enumerate(readers):
                self.assertTrue(r.join(), f"stream {i} outlived the drain")
            self.assertLess(time.monotonic() - t0, 60)
            cancelled_running = 0
            for i, r in enumerate(readers):
                self.assertEqual(r.code, grpc.StatusCode.UNAVAILABLE, f"stream {i}: {r.details}")
                self.assertLess(len(r.tokens()), LONG, f"stream {i}")
                if r.responses:
                    self.assertEqual(harness.finish_name(r.responses[-1].finish_reason),
                                     "FINISH_REASON_CANCELLED", f"stream {i}")
                    cancelled_running += 1
            code = srv.wait()
            self.assertEqual(code, 0, f"exit code\n{srv.log_tail()}")
            log = srv.log_path.read_text(errors="replace")
            self.assertIn(f"drain timeout: cancelled {n} requests", log)
            print(f"  SIGTERM with {load.running_requests} running and {load.waiting_requests} "
                  f"waiting: all {n} ended UNAVAILABLE ({cancelled_running} with a final "
                  f"response), exit 0")
        finally:
            srv.kill()


if __name__ == "__main__":
    harness.main()
