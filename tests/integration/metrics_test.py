#!/usr/bin/env python3
"""/metrics after real traffic, on a tiny Llama (transformer) and a tiny Mamba-2
(ssm): promtool accepts the exposition; every DESIGN.md section 6 metric is there
with the model and architecture labels; token counters equal what the clients
received; KV blocks and state slots in use return to 0 when idle (also read back
through GetModel, after cancelled streams); the attributed request costs add up
to device busy time x price."""
import math
import re
import shutil
import subprocess
import time
import unittest
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc

import harness

PRICE_PER_HOUR = 3.6  # USD per device hour: 0.001 per device second

METRICS = {
    "hybridserve_time_to_first_token_seconds": "histogram",
    "hybridserve_inter_token_latency_seconds": "histogram",
    "hybridserve_request_duration_seconds": "histogram",
    "hybridserve_request_queue_seconds": "histogram",
    "hybridserve_engine_step_seconds": "histogram",
    "hybridserve_batch_tokens": "histogram",
    "hybridserve_batch_sequences": "histogram",
    "hybridserve_prompt_tokens_total": "counter",
    "hybridserve_generation_tokens_total": "counter",
    "hybridserve_requests_total": "counter",
    "hybridserve_preemptions_total": "counter",
    "hybridserve_requests": "gauge",
    "hybridserve_kv_cache_blocks": "gauge",
    "hybridserve_ssm_state_slots": "gauge",
    "hybridserve_memory_bytes": "gauge",
    "hybridserve_kv_cache_bytes_per_token": "gauge",
    "hybridserve_ssm_state_bytes_per_sequence": "gauge",
    "hybridserve_device_busy_seconds_total": "counter",
    "hybridserve_cost_usd_total": "counter",
}

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$')


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        return r.read().decode()


def samples(text):
    """[(name, {label: value}, float)] of every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError(f"unparsable metrics line: {line!r}")
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def value(parsed, name, **labels):
    vals = [v for n, l, v in parsed if n == name and all(l.get(k) == x for k, x in labels.items())]
    if len(vals) != 1:
        raise AssertionError(f"{name}{labels}: {len(vals)} samples")
    return vals[0]


class MetricsTest(unittest.TestCase):
    def run_model(self, arch, family):
        extra = [] if arch == "llama" else ["--architecture", arch]
        model_dir = harness.make_tiny_model(f"metrics_{arch}", *extra)
        server = harness.Server(model_dir, "--metrics-port", "0",
                                "--cost-per-device-hour", str(PRICE_PER_HOUR)).start()
        try:
            metrics_port = int(server.ready_file.read_text().split()[1])
            stub = server.stub()
            reqs = [harness.request(list(range(3 + i, 20 + 2 * i)), max_new_tokens=5 + i)
                    for i in range(12)]
            with ThreadPoolExecutor(max_workers=6) as pool:
                results = list(pool.map(lambda r: harness.generate(stub, r), reqs))
            completed_only = scrape(metrics_port)  # before any cancelled stream
            # Streams cancelled mid-way also return everything they held.
            for _ in range(3):
                call = stub.Generate(harness.request([5, 6, 7], max_new_tokens=2000,
                                                     ignore_eos=True), timeout=60)
                next(call)
                call.cancel()
            deadline = time.monotonic() + 30
            while True:
                load = harness.get_model(stub).load
                if (load.free_kv_blocks == load.total_kv_blocks and
                        load.free_state_slots == load.total_state_slots and
                        load.running_requests == 0 and load.waiting_requests == 0):
                    break
                self.assertLess(time.monotonic(), deadline, f"{arch}: not idle: {load}")
                time.sleep(0.05)
            if family == "ssm":
                self.assertGreater(load.total_state_slots, 0)
            text = scrape(metrics_port)
        finally:
            server.stop()
        return results, completed_only, text

    def check(self, arch, family):
        results, completed_only, text = self.run_model(arch, family)
        promtool = shutil.which("promtool")
        if promtool:
            out = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.assertEqual(out.returncode, 0, out.stdout.decode())
            self.assertEqual(out.stdout.decode().strip(), "", out.stdout.decode())
        else:
            print("note: promtool not installed; exposition format not checked by promtool")
        parsed = samples(text)
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        for name, kind in METRICS.items():
            self.assertEqual(types.get(name), kind, f"{arch}: {name}")
            series = [l for n, l, _ in parsed if n == name or n.startswith(name + "_")]
            self.assertTrue(series, f"{arch}: no samples of {name}")
            for labels in series:
                self.assertEqual(labels.get("architecture"), family, f"{name} {labels}")
                self.assertEqual(labels.get("model"), f"metrics_{arch}", f"{name} {labels}")
        got_tokens = sum(r.usage.completion_tokens for r in results)
        self.assertEqual(got_tokens, sum(len(r.token_ids) for r in results))
        generated = value(parsed, "hybridserve_generation_tokens_total")
        # Cancelled streams also generated tokens the clients did not all read:
        # the counter covers at least what the completed clients received.
        self.assertGreaterEqual(generated, got_tokens)
        finished = sum(r.usage.prompt_tokens for r in results)
        self.assertEqual(value(parsed, "hybridserve_prompt_tokens_total"), finished + 3 * 3)
        self.assertEqual(value(parsed, "hybridserve_requests_total", finish_reason="length"),
                         len(results))
        self.assertEqual(value(parsed, "hybridserve_requests_total", finish_reason="cancelled"), 3)
        self.assertEqual(value(parsed, "hybridserve_kv_cache_blocks", state="used"), 0)
        self.assertEqual(value(parsed, "hybridserve_ssm_state_slots", state="used"), 0)
        self.assertEqual(value(parsed, "hybridserve_requests", state="running"), 0)
        busy = value(parsed, "hybridserve_device_busy_seconds_total")
        self.assertGreater(busy, 0)
        # Attribution splits each step's device time among its sequences in
        # proportion to their tokens, so over completed requests alone the
        # attributed costs add up to busy time x price.
        busy_completed = value(samples(completed_only), "hybridserve_device_busy_seconds_total")
        attributed = sum(r.usage.cost_usd for r in results)
        self.assertGreater(attributed, 0)
        self.assertTrue(math.isclose(attributed, busy_completed * PRICE_PER_HOUR / 3600,
                                     rel_tol=1e-6),
                        f"{attributed} vs {busy_completed * PRICE_PER_HOUR / 3600}")
        for r in results:
            self.assertTrue(math.isclose(r.usage.cost_usd,
                                         r.usage.device_seconds * PRICE_PER_HOUR / 3600,
                                         rel_tol=1e-9))
        self.assertGreater(value(parsed, "hybridserve_cost_usd_total"), 0)

    def test_transformer(self):
        self.check("llama", "transformer")

    def test_ssm(self):
        self.check("mamba2", "ssm")


if __name__ == "__main__":
    harness.main()
