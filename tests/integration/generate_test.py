#!/usr/bin/env python3
"""Generation through the server: greedy equals the offline runner's greedy;
concurrent streams return exactly what they return alone (equality class (b));
a seeded sampled request returns the same tokens batched and alone."""
import json
import random
import subprocess
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import grpc

import harness
from harness import pb

server = None
model_dir = None


def setUpModule():
    global server, model_dir
    model_dir = harness.make_tiny_model("tiny")
    server = harness.Server(model_dir, "--max-num-seqs", "32").start()


def tearDownModule():
    server.stop()


def offline_greedy(prompt, n):
    cmd = [harness.binary("hs_run_offline"), "--model", str(model_dir), "--prompt_ids",
           ",".join(map(str, prompt)), "--max_new_tokens", str(n), "--top_n", "1", "--quiet",
           "--threads", "1"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()}")
    return json.loads(proc.stdout)["generated"]


def prompts(n, seed):
    rng = random.Random(seed)
    return [[256] + [rng.randrange(0, 256) for _ in range(rng.randrange(2, 24))]
            for _ in range(n)]


class GreedyVsOfflineTest(unittest.TestCase):
    def test_greedy_equals_offline_runner(self):
        stub = server.stub()
        n = 16
        for prompt in [[256, 72, 101, 108, 108, 111], [256, 1, 2, 3], *prompts(3, seed=5)]:
            with self.subTest(prompt=prompt):
                ref = offline_greedy(prompt, n)
                got = harness.generate(stub, harness.request(prompt, max_new_tokens=n, logprobs=0))
                self.assertEqual(got.token_ids, [g["id"] for g in ref])
                self.assertEqual(harness.finish_name(got.finish_reason), "FINISH_REASON_LENGTH")
                self.assertEqual(got.prompt_token_ids, prompt)
                self.assertEqual(len(got.logprobs), n)
                for i, (lp, r) in enumerate(zip(got.logprobs, ref)):
                    self.assertEqual(lp.token_id, r["id"])
                    self.assertAlmostEqual(lp.logprob, r["logprob"], delta=1e-4,
                                           msg=f"logprob of generated token {i}")
                self.assertEqual(got.usage.prompt_tokens, len(prompt))
                self.assertEqual(got.usage.completion_tokens, n)


class BatchingTest(unittest.TestCase):
    def test_16_concurrent_greedy_streams_equal_alone(self):
        stub = server.stub()
        ps = prompts(16, seed=1)
        n = 24
        alone = [harness.generate(stub, harness.request(p, max_new_tokens=n)).token_ids
                 for p in ps]
        spans = [None] * len(ps)
        start = threading.Barrier(len(ps))

        def run(i):
            start.wait()
            t0 = time.monotonic()
            r = harness.generate(stub, harness.request(ps[i], max_new_tokens=n))
            spans[i] = (t0, time.monotonic())
            return r

        with ThreadPoolExecutor(len(ps)) as pool:
            batched = list(pool.map(run, range(len(ps))))
        for i, (a, b) in enumerate(zip(alone, batched)):
            self.assertEqual(len(a), n)
            self.assertEqual(b.token_ids, a, f"stream {i} (prompt {ps[i]}): batched != alone")
            self.assertEqual(harness.finish_name(b.finish_reason), "FINISH_REASON_LENGTH")
        overlap = min(e for _, e in spans) - max(s for s, _ in spans)
        print(f"  16 streams: all open together for {overlap * 1e3:.1f} ms")
        harness.wait_blocks_free(self, stub, what="after 16 streams")

    def test_seeded_sample_same_batched_and_alone(self):
        stub = server.stub()
        prompt = [256, 84, 104, 101, 32]
        seeded = harness.request(prompt, max_new_tokens=24, temperature=1.0, top_k=50,
                                 top_p=0.9, seed=1234)
        alone = harness.generate(stub, seeded).token_ids
        self.assertEqual(len(alone), 24)
        # Other seeds and greedy give other tokens (the sampler is really sampling).
        other_seed = harness.request(prompt, max_new_tokens=24, temperature=1.0, top_k=50,
                                     top_p=0.9, seed=1235)
        self.assertNotEqual(harness.generate(stub, other_seed).token_ids, alone)
        self.assertNotEqual(harness.generate(stub, harness.request(prompt, max_new_tokens=24))
                            .token_ids, alone)
        self.assertEqual(harness.generate(stub, seeded).token_ids, alone, "seeded, alone, twice")

        # Now with 8 other streams (greedy and sampled, unseeded) running; they are
        # cancelled once the seeded request is done.
        started = harness.Barrier()
        calls = []
        for i, p in enumerate(prompts(8, seed=9)):
            kw = {"temperature": 0.0} if i % 2 else {"temperature": 1.0, "top_k": 20}
            calls.append(stub.Generate(harness.request(p, max_new_tokens=1500, **kw),
                                       timeout=harness.RPC_TIMEOUT_S))
        counts = [0] * len(calls)

        def read(i):
            try:
                for r in calls[i]:
                    if counts[i] == 0:
                        started.signal()
                    counts[i] += len(r.token_ids)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.CANCELLED:
                    raise

        with ThreadPoolExecutor(len(calls)) as pool:
            futures = [pool.submit(read, i) for i in range(len(calls))]
            self.assertTrue(started.wait_for(len(calls), timeout=harness.RPC_TIMEOUT_S),
                            "8 streams did not start")
            running = harness.get_model(stub).load.running_requests
            batched = harness.generate(stub, seeded).token_ids
            still_running = harness.get_model(stub).load.running_requests
            for c in calls:
                c.cancel()
            for f in futures:
                f.result()
        print(f"  seeded request ran with {running} others running ({still_running} after it)")
        self.assertEqual(running, 8, "the 8 other streams were not all running")
        self.assertEqual(still_running, 8, "the 8 other streams ended before the seeded one")
        self.assertEqual(batched, alone, "seeded sample: batched with 8 others != alone")
        harness.wait_blocks_free(self, stub, what="after seeded batch")


if __name__ == "__main__":
    harness.main()
