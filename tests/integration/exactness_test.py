"""Class (b) through the real server, for every architecture (DESIGN.md section 7):
a request's tokens, logprobs (its own and the top alternatives) and prompt logprobs
are bitwise the same sent alone to an idle server as sent among 15 concurrent
requests to a server that splits prompts into 256-token steps, mixes prefill chunks
with decodes, runs on 2 threads instead of 1 and, for models with attention, has
too little KV cache for all of them (sequences are preempted and recomputed).
Greedy and seeded-sampled requests alike; one prompt is 1,040 tokens long.
"""
import random
import threading
import unittest
import urllib.request

import harness

ARCHITECTURES = ("llama", "qwen3", "mamba2", "mamba", "bamba")
NEW_TOKENS = 24


def scrape(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def requests_for_test():
    """16 requests: prompts of 1 to 300 tokens and one of 1,040; every third sampled."""
    rng = random.Random(13)
    out = []
    for i in range(16):
        n = 1040 if i == 5 else rng.randrange(1, 300)
        ids = [256] + [rng.randrange(0, 256) for _ in range(n - 1)]
        sampled = i % 3 == 2
        out.append(harness.request(ids, max_new_tokens=NEW_TOKENS,
                                   temperature=0.8 if sampled else 0.0, seed=1000 + i,
                                   logprobs=3, prompt_logprobs=2))
    return out


def fingerprint(result):
    """Everything numeric a client receives, as exact Python values."""
    def lps(items):
        return [(lp.token_id, lp.logprob, [(t.token_id, t.logprob) for t in lp.top])
                for lp in items]
    prompt = [lp for r in result.responses for lp in r.prompt_logprobs]
    return {"tokens": result.token_ids, "logprobs": lps(result.logprobs),
            "prompt_logprobs": lps(prompt),
            "finish": harness.finish_name(result.finish_reason)}


class ExactnessTest(unittest.TestCase):
    def test_alone_vs_under_load(self):
        for arch in ARCHITECTURES:
            with self.subTest(arch=arch):
                self.check(arch)

    def check(self, arch):
        model = harness.make_tiny_model(f"exact_{arch}", "--architecture", arch)
        reqs = requests_for_test()
        common = ["--max-model-len", "1100"]
        idle = harness.Server(model, *common, "--max-batched-tokens", "2048",
                              name=f"exact_{arch}_idle").start()
        try:
            alone = [fingerprint(harness.generate(idle.stub(), r)) for r in reqs]
            info = harness.get_model(idle.stub())
            kv_tokens = info.kv_cache_bytes_per_token
        finally:
            idle.stop()
        extra = ["--max-batched-tokens", "256", "--max-num-seqs", "8", "--threads", "2",
                 "--metrics-port", "0"]
        if kv_tokens > 0:
            # Room for 1,120 tokens (70 blocks): the 1,064 of the longest request fit,
            # but it cannot run beside much else, and the 16 need ~4,000 in all.
            slots = 8 * info.ssm_state_bytes_per_sequence
            extra += ["--kv-cache-bytes", str(1120 * kv_tokens + slots)]
        loaded = harness.Server(model, *common, *extra, name=f"exact_{arch}_loaded").start()
        try:
            results = [None] * len(reqs)
            errors = []

            def run(i):
                try:
                    results[i] = fingerprint(harness.generate(loaded.stub(), reqs[i]))
                except Exception as e:  # reported below
                    errors.append(f"request {i}: {e}")

            threads = [threading.Thread(target=run, args=(i,)) for i in range(len(reqs))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            for i, (want, got) in enumerate(zip(alone, results)):
                self.assertEqual(got["finish"], "FINISH_REASON_LENGTH", f"{arch} request {i}")
                for key in ("tokens", "logprobs", "prompt_logprobs"):
                    self.assertEqual(got[key], want[key],
                                     f"{arch} request {i} ({len(reqs[i].token_ids.ids)} prompt "
                                     f"tokens): {key} differ under load")
            port = int(loaded.ready_file.read_text().split()[1])
            preemptions = scrape(port, "hybridserve_preemptions_total")
            print(f"  {arch}: 16 requests bitwise equal alone and under load "
                  f"({int(preemptions)} preemptions)")
            if kv_tokens > 0:
                self.assertGreater(preemptions, 0, "the KV cache was meant to run out")
        finally:
            loaded.stop()


if __name__ == "__main__":
    harness.main()
