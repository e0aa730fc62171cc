"""The load generator (tools/loadgen/): length distributions, percentiles,
summaries and the comparison table on fixed records; and, when the server and
tiny-model binaries are given, real runs against a tiny Llama on loopback:
closed loop with warm-up, open loop (Poisson), a JSONL prompt file, an error
run (unknown model name: errors by status), `compare` of the reports, and the
tools/loadgen/run.sh wrapper.

  python3 tests/deploy/loadgen_test.py [--hybridserve PATH --hs_make_tiny_model PATH]
"""
import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import deploy_common as dc

LOADGEN_DIR = dc.ROOT / "tools" / "loadgen"
sys.path.insert(0, str(LOADGEN_DIR))
import report  # noqa: E402

ARGS = None


def rec(ttft, itl, e2e, tokens, cost=0.001, ok=True, status="OK", prompt=10):
    return {"ok": ok, "status": status, "finish_reason": "length" if ok else None,
            "ttft_s": ttft, "itl_s": itl, "e2e_s": e2e, "completion_tokens": tokens,
            "usage": {"prompt_tokens": prompt, "completion_tokens": tokens, "queue_seconds": 0.01,
                      "first_token_seconds": ttft, "total_seconds": e2e,
                      "device_seconds": cost * 1440, "cost_usd": cost} if ok else None}


class UnitTest(unittest.TestCase):
    def test_percentile(self):
        self.assertIsNone(report.percentile([], 50))
        self.assertEqual(report.percentile([3], 99), 3)
        xs = list(range(1, 101))
        self.assertAlmostEqual(report.percentile(xs, 50), 50.5)
        self.assertAlmostEqual(report.percentile(xs, 90), 90.1)
        self.assertAlmostEqual(report.percentile(xs, 99), 99.01)
        self.assertEqual(report.percentile(list(reversed(xs)), 100), 100)

    def test_distributions(self):
        import loadgen
        rng = random.Random(1)
        self.assertEqual({loadgen.Dist("7").sample(rng) for _ in range(20)}, {7})
        self.assertEqual({loadgen.Dist("fixed:3").sample(rng) for _ in range(20)}, {3})
        u = [loadgen.Dist("uniform:4:8").sample(rng) for _ in range(500)]
        self.assertEqual(set(u), {4, 5, 6, 7, 8})
        for spec in ("normal:10:50", "lognormal:20:1.5", "exp:5"):
            xs = [loadgen.Dist(spec).sample(rng) for _ in range(500)]
            self.assertGreaterEqual(min(xs), 1, spec)
        ln = sorted(loadgen.Dist("lognormal:100:0.5").sample(rng) for _ in range(2001))
        self.assertLess(abs(ln[1000] - 100), 10)
        for bad in ("uniform:9:3", "gamma:1", "fixed:0", "normal:1", "x"):
            with self.assertRaises(argparse.ArgumentTypeError, msg=bad):
                loadgen.Dist(bad)

    def test_summary_and_compare(self):
        recs = [rec(0.1, [0.01] * 9, 0.2, 10), rec(0.3, [0.02] * 9, 0.5, 10),
                rec(None, [], 0.05, 0, ok=False, status="RESOURCE_EXHAUSTED"),
                rec(None, [], 0.05, 0, ok=False, status="RESOURCE_EXHAUSTED"),
                rec(None, [], 0.05, 0, ok=False, status="UNAVAILABLE")]
        s = report.summarize(recs, 2.0)
        self.assertEqual((s["requests"], s["ok"]), (5, 2))
        self.assertEqual(s["errors"], {"RESOURCE_EXHAUSTED": 2, "UNAVAILABLE": 1})
        self.assertEqual(s["finish_reasons"], {"length": 2})
        self.assertAlmostEqual(s["request_throughput"], 1.0)
        self.assertAlmostEqual(s["generated_tokens_per_second"], 10.0)
        self.assertAlmostEqual(s["prompt_tokens_per_second"], 10.0)
        self.assertAlmostEqual(s["ttft_seconds"]["p50"], 0.2)
        self.assertEqual(s["inter_token_seconds"]["count"], 18)
        self.assertAlmostEqual(s["cost_per_1m_generated_tokens_usd"], 1e6 * 0.002 / 20)
        self.assertAlmostEqual(s["cost_per_1m_total_tokens_usd"], 1e6 * 0.002 / 40)
        run = {"label": "a", "target": "x", "summary": s,
               "model": {"name": "m", "family": "ssm", "architecture": "Mamba2ForCausalLM",
                         "device": "cpu", "dtype": "f32"},
               "config": {"mode": "closed", "concurrency": 16, "rate": None,
                          "warmup_requests": 0}}
        run2 = json.loads(json.dumps(run))
        run2.update(label="b", config=dict(run["config"], mode="open", rate=2.5,
                                            concurrency=None))
        table = report.compare_table([run, run2])
        lines = table.splitlines()
        self.assertIn("| metric", lines[0])
        self.assertIn("| a ", lines[0])
        self.assertIn("| b ", lines[0])
        self.assertEqual(len({len(l) for l in lines}), 1, "ragged table:\n" + table)
        self.assertIn("closed, 16 streams", table)
        self.assertIn("open, 2.5 req/s", table)
        self.assertIn("RESOURCE_EXHAUSTED 2, UNAVAILABLE 1", table)
        self.assertIn("cost / 1M generated tokens", table)
        self.assertIn("TTFT p99 (ms)", table)
        self.assertEqual(len(report.compare_table([run], "tsv").splitlines()),
                         len(lines) - 1)
        self.assertIn("p99", report.text_report(run))

    def test_empty_summary(self):
        s = report.summarize([], 0.0)
        self.assertEqual(s["ok"], 0)
        self.assertIsNone(s["ttft_seconds"]["p50"])
        self.assertIsNone(s["cost_per_1m_generated_tokens_usd"])
        report.compare_table([{"summary": s, "model": {}, "config": {
            "mode": "closed", "concurrency": 1, "warmup_requests": 0}}])


class ServerTest(unittest.TestCase):
    """Against a real server (skipped without the binaries)."""

    @classmethod
    def setUpClass(cls):
        if not (ARGS.hybridserve and ARGS.hs_make_tiny_model):
            raise unittest.SkipTest("needs --hybridserve and --hs_make_tiny_model")
        try:
            import grpc  # noqa: F401
            import grpc_tools  # noqa: F401
        except ImportError as e:
            raise unittest.SkipTest(f"{e} (tests/requirements.txt)")
        cls.work = Path(tempfile.mkdtemp(prefix="hs_loadgen_test_"))
        model = cls.work / "tiny"
        dc.run([ARGS.hs_make_tiny_model, "--preset", "tiny", "--out", str(model)])
        ready = cls.work / "ready"
        cls.log = open(cls.work / "server.log", "wb")
        cls.server = subprocess.Popen(
            [ARGS.hybridserve, "--model", str(model), "--served-model-name", "tiny",
             "--host", "127.0.0.1", "--port", "0", "--ready-file", str(ready), "--threads", "1",
             "--kv-cache-bytes", str(16 << 20), "--cost-per-device-hour", "3.6",
             "--metrics-port", "0"] if "metrics-port" in dc.server_flags(ARGS.hybridserve)
            else [ARGS.hybridserve, "--model", str(model), "--served-model-name", "tiny",
                  "--host", "127.0.0.1", "--port", "0", "--ready-file", str(ready),
                  "--threads", "1", "--kv-cache-bytes", str(16 << 20)],
            stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not (ready.exists() and ready.read_text().strip()):
            if cls.server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("server not ready:\n" +
                                     (cls.work / "server.log").read_text()[-3000:])
            time.sleep(0.05)
        cls.target = f"127.0.0.1:{ready.read_text().split()[0]}"

    @classmethod
    def tearDownClass(cls):
        cls.server.terminate()
        cls.server.wait(timeout=60)
        cls.log.close()

    def loadgen(self, *args, want_rc=0):
        p = subprocess.run([sys.executable, str(LOADGEN_DIR / "loadgen.py"), *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=300)
        self.assertEqual(p.returncode, want_rc, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        return p

    def test_closed_open_prompts_compare(self):
        closed = self.work / "closed.json"
        p = self.loadgen("run", "--target", self.target, "--concurrency", "3", "--num-requests",
                         "9", "--warmup", "2", "--prompt-len", "uniform:3:12", "--output-len", "5",
                         "--label", "closed", "--json", str(closed), "--progress", "lines")
        self.assertIn("TTFT", p.stdout)
        r = json.loads(closed.read_text())
        s = r["summary"]
        self.assertEqual((s["requests"], s["ok"], s["errors"]), (9, 9, {}))
        self.assertEqual(s["generated_tokens"], 45)  # ignore_eos: exactly 5 each
        self.assertEqual(s["finish_reasons"], {"length": 9})
        self.assertEqual(s["inter_token_seconds"]["count"], 9 * 4)
        self.assertEqual(r["model"]["family"], "transformer")
        self.assertEqual(r["config"]["mode"], "closed")
        for k in ("ttft_seconds", "e2e_seconds"):
            self.assertLessEqual(s[k]["p50"], s[k]["p99"])
        if "cost-per-device-hour" in dc.server_flags(ARGS.hybridserve):
            self.assertGreater(s["cost_usd"], 0)
            # 3.6 USD per hour = 0.001 USD per device second.
            self.assertAlmostEqual(s["cost_usd"], s["device_seconds"] * 0.001, places=9)

        prompts = self.work / "prompts.jsonl"
        prompts.write_text('{"text": "hello", "max_new_tokens": 3}\n\n'
                           '{"prompt": "abc"}\n{"token_ids": [1, 2, 3], "max_new_tokens": 2}\n')
        opened = self.work / "open.json"
        self.loadgen("run", "--target", self.target, "--rate", "20", "--num-requests", "6",
                     "--prompts", str(prompts), "--output-len", "4", "--json", str(opened),
                     "--progress", "off")
        r = json.loads(opened.read_text())
        s = r["summary"]
        self.assertEqual((s["requests"], s["ok"]), (6, 6))
        self.assertEqual(s["generated_tokens"], 2 * (3 + 4 + 2))
        self.assertEqual(r["config"]["mode"], "open")

        p = self.loadgen("compare", str(closed), str(opened))
        self.assertIn("closed, 3 streams", p.stdout)
        self.assertIn("open, 20 req/s", p.stdout)
        # The wrapper, with the test interpreter instead of its own venv.
        w = subprocess.run(["bash", str(LOADGEN_DIR / "run.sh"), "compare", str(closed)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env={"HS_LOADGEN_PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
        self.assertEqual(w.returncode, 0, w.stdout)
        self.assertIn("closed, 3 streams", w.stdout)

    def test_errors_by_status(self):
        out = self.work / "err.json"
        # An unknown model: GetModel fails up front.
        p = self.loadgen("run", "--target", self.target, "--model", "nope", "--num-requests",
                         "2", "--progress", "off", want_rc=1)
        self.assertIn("nope", p.stderr)
        # Prompts beyond the context: every request fails with INVALID_ARGUMENT.
        prompts = self.work / "long.jsonl"
        prompts.write_text(json.dumps({"token_ids": [5] * 100000, "max_new_tokens": 4}) + "\n")
        self.loadgen("run", "--target", self.target, "--concurrency", "2", "--num-requests", "4",
                     "--prompts", str(prompts), "--json", str(out), "--progress", "off",
                     "--max-error-rate", "0", want_rc=1)
        s = json.loads(out.read_text())["summary"]
        self.assertEqual(s["ok"], 0)
        self.assertEqual(s["errors"], {"INVALID_ARGUMENT": 4})


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--hybridserve")
    ap.add_argument("--hs_make_tiny_model")
    ARGS, rest = ap.parse_known_args()
    r = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2).result
    sys.exit(0 if r.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
