"""End to end: real servers, a real Prometheus, the load generator, and every
PromQL expression of the dashboard and the rules.

1. Starts hybridserve on loopback for a tiny Llama (transformer), a tiny Mamba-2
   (ssm) and a tiny Bamba (hybrid), each with --metrics-port 0 and a price.
   The SSM and hybrid checkpoints come from `hs_make_tiny_model --architecture`
   when the tool has it, else from the transformers-written golden fixtures
   (tests/golden/fixtures) with the tiny Llama's byte-level tokenizer.
2. Starts Prometheus (Debian package prometheus) on a free loopback port with
   deploy/prometheus/prometheus.yml and its rule files, the targets rewritten to
   the servers' metrics ports and the intervals shortened to 1-2 s.
3. Runs tools/loadgen/loadgen.py against each server (closed loop, no errors
   allowed) and waits until Prometheus has scraped the generated-token counters
   equal to what the clients received.
4. Queries every dashboard target (template variables: all models, rate
   interval 1m), every recording rule's expression and recorded series, and
   every alert's expression (its comparison made a `bool` one, so that it
   returns 0/1 for every series instead of nothing while all is well) through
   Prometheus's HTTP API, and asserts each returns data for every model it
   applies to: KV cache blocks only exist for models with attention layers, SSM
   state slots only for models with SSM layers; `up` for every target.
   Also: all-in cost >= busy-only cost > 0 for every model.

  python3 tests/deploy/e2e_test.py --hybridserve PATH --hs_make_tiny_model PATH
      [--prometheus PATH] [--keep]
Skips (77) when grpcio / PyYAML or the prometheus binary is missing.
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import deploy_common as dc

FIXTURES = dc.ROOT / "tests" / "golden" / "fixtures"
LOADGEN = dc.ROOT / "tools" / "loadgen" / "loadgen.py"
PRICE_PER_HOUR = 2.5
READY_TIMEOUT_S = 120
QUERY_DEADLINE_S = 60


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# Models.

def make_models(work, maker):
    """{name: (dir, architecture)}: tiny Llama, Mamba-2 and Bamba checkpoints."""
    models = {}
    llama = work / "llama"
    dc.run([maker, "--preset", "tiny", "--out", str(llama)])
    models["tiny-llama"] = (llama, "transformer")
    help_text = subprocess.run([maker, "--help"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True).stdout
    for name, arch, value, fixture in (("tiny-mamba2", "ssm", "mamba2", "mamba2_f32_g1_chunk8"),
                                       ("tiny-bamba", "hybrid", "bamba", "bamba_f32_attn1")):
        out = work / value
        if re.search(r"--architecture\b", help_text) and value in help_text.lower():
            dc.run([maker, "--preset", "tiny", "--architecture", value, "--out", str(out)])
            how = f"hs_make_tiny_model --architecture {value}"
        else:
            src = FIXTURES / fixture
            out.mkdir()
            for f in ("config.json", "model.safetensors", "generation_config.json"):
                shutil.copy(src / f, out / f)
            for f in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copy(llama / f, out / f)
            how = f"golden fixture {fixture} + the tiny Llama's tokenizer"
        log(f"{name}: {how}")
        models[name] = (out, arch)
    return models


class Proc:
    def __init__(self, name, cmd, log_path):
        self.name = name
        self.cmd = cmd
        self.log_path = log_path
        with open(log_path, "wb") as f:
            self.p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)

    def tail(self, n=30):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no output)"
        return "\n".join("    | " + l for l in lines[-n:])

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


def start_server(work, binary, name, model_dir):
    ready = work / f"{name}.ready"
    cmd = [binary, "--model", str(model_dir), "--served-model-name", name, "--host", "127.0.0.1",
           "--port", "0", "--metrics-port", "0", "--ready-file", str(ready), "--threads", "1",
           "--kv-cache-bytes", str(32 << 20), "--cost-per-device-hour", str(PRICE_PER_HOUR)]
    return Proc(name, cmd, work / f"{name}.log"), ready


def wait_ready(proc, ready):
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            raise AssertionError(f"{proc.name} exited {proc.p.returncode} before it was ready\n"
                                 f"  {' '.join(proc.cmd)}\n{proc.tail()}")
        try:
            lines = ready.read_text().split()
            if len(lines) >= 2:
                return int(lines[0]), int(lines[1])
            if len(lines) == 1 and proc.p.poll() is None:
                pass
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{proc.name}: no gRPC and metrics port in {ready} after "
                         f"{READY_TIMEOUT_S} s (does the server have --metrics-port?)\n"
                         f"{proc.tail()}")


# ---------------------------------------------------------------------------
# Prometheus.

def prometheus_config(work, metrics_ports):
    import yaml
    cfg = yaml.safe_load((dc.PROM_DIR / "prometheus.yml").read_text())
    # Scrapes every 2 s with a 2 s timeout: a scrape that times out on a busy
    # machine marks the target's gauges stale until the next one succeeds.
    cfg["global"].update({"scrape_interval": "2s", "scrape_timeout": "2s",
                          "evaluation_interval": "1s"})
    cfg["rule_files"] = [str((dc.PROM_DIR / f).resolve()) for f in cfg["rule_files"]]
    (job,) = [j for j in cfg["scrape_configs"] if j["job_name"] == "hybridserve"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{p}" for p in metrics_ports]}]
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def query(prom_url, expr):
    url = f"{prom_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        data = json.loads(http_get(url))
    except urllib.error.HTTPError as e:
        raise AssertionError(f"query failed ({e.code}): {expr}\n{e.read().decode()[:2000]}")
    assert data["status"] == "success", data
    return data["data"]["result"]


def bool_alert(expr):
    """`A > N` -> `A > bool N` (alerts are one comparison with a number)."""
    m = re.match(r"^(.*?)\s*(==|!=|>=|<=|>|<)\s*([-+0-9.eE]+)$", expr.strip(), re.S)
    assert m, f"alert expression is not '<expr> <op> <number>': {expr}"
    return f"{m.group(1)} {m.group(2)} bool {m.group(3)}"


def expected(expr, models):
    """(label, values) an expression's result must cover: models with attention
    layers for KV cache blocks, with SSM layers for state slots, else all."""
    archs = {a for _, a in models.values()}
    if re.search(r"kv_cache_(blocks|usage)", expr):
        archs &= {"transformer", "hybrid"}
    elif re.search(r"ssm_state_slots", expr):
        archs &= {"ssm", "hybrid"}
    names = {n for n, (_, a) in models.items() if a in archs}
    return names, archs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hybridserve", default=str(dc.ROOT / "build/server/hybridserve"))
    ap.add_argument("--hs_make_tiny_model", default=str(dc.ROOT / "build/tools/hs_make_tiny_model"))
    ap.add_argument("--prometheus")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()

    dc.require_modules("yaml", "grpc", "grpc_tools")
    prometheus = dc.tool("prometheus", args.prometheus, "PROMETHEUS")
    if not prometheus:
        dc.skip("prometheus not found (Debian package prometheus; scripts/setup.sh installs it)")
    for b in (args.hybridserve, args.hs_make_tiny_model):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"FAIL: {b} not found (build it, or pass its path)")
    if "metrics-port" not in dc.server_flags(args.hybridserve):
        dc.skip("this hybridserve has no --metrics-port")

    work = Path(tempfile.mkdtemp(prefix="hs_deploy_e2e_"))
    procs = []
    failures = []
    try:
        t0 = time.monotonic()
        models = make_models(work, args.hs_make_tiny_model)
        servers = {}
        for name, (d, _) in models.items():
            proc, ready = start_server(work, args.hybridserve, name, d)
            procs.append(proc)
            servers[name] = (proc, ready)
        ports = {name: wait_ready(*servers[name]) for name in models}
        log(f"servers ready: " + ", ".join(f"{n} grpc {g} metrics {m}"
                                           for n, (g, m) in ports.items()))

        prom_port = free_port()
        cfg = prometheus_config(work, [m for _, m in ports.values()])
        prom = Proc("prometheus", [prometheus, f"--config.file={cfg}",
                                   f"--storage.tsdb.path={work / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{prom_port}",
                                   "--log.level=warn"], work / "prometheus.log")
        procs.append(prom)
        prom_url = f"http://127.0.0.1:{prom_port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                http_get(f"{prom_url}/-/ready", timeout=2)
                break
            except OSError:
                if prom.p.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"prometheus not ready\n{prom.tail()}")
                time.sleep(0.2)
        log(f"prometheus ready on {prom_url}")
        # Rates need a sample from before the load: wait for a scrape of every
        # server's idle counters.
        deadline = time.monotonic() + 60
        while True:
            got = {r["metric"]["model"] for r in query(
                prom_url, "hybridserve_generation_tokens_total == 0")}
            if got == set(models):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus scraped idle counters of {sorted(got)} only\n"
                                     f"{prom.tail()}")
            time.sleep(0.2)

        # Load: one server after the other (servers running side by side on a small
        # machine slow each other down far more than their share), closed loop.
        client_tokens = {}
        for name, (grpc_port, _) in ports.items():
            out = work / f"{name}.json"
            cmd = [sys.executable, str(LOADGEN), "run", "--target", f"127.0.0.1:{grpc_port}",
                   "--concurrency", "4", "--num-requests", "16", "--prompt-len", "uniform:4:24",
                   "--output-len", "12", "--progress", "off", "--max-error-rate", "0",
                   "--json", str(out)]
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=300)
            if p.returncode != 0:
                raise AssertionError(f"loadgen against {name} exited {p.returncode}\n{p.stdout}")
            report = json.loads(out.read_text())
            s = report["summary"]
            assert s["ok"] == s["requests"] == 16, (name, s)
            assert report["model"]["family"] == models[name][1], (name, report["model"])
            assert s["cost_per_1m_generated_tokens_usd"] > 0, (name, s)
            client_tokens[name] = s["generated_tokens"]
        log(f"load done; tokens received: {client_tokens}")

        # Prometheus has scraped the counters as the clients saw them.
        deadline = time.monotonic() + 30
        while True:
            got = {r["metric"]["model"]: float(r["value"][1]) for r in query(
                prom_url, "sum by (model) (hybridserve_generation_tokens_total)")}
            if all(got.get(n) == client_tokens[n] for n in models):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"generated tokens in Prometheus {got} != received by the "
                                     f"clients {client_tokens}")
            time.sleep(0.5)

        queries = [(w, e, "dashboard") for w, e in dc.dashboard_queries("1m")]
        for w, e, kind in dc.rule_queries():
            queries.append((w, bool_alert(e) if kind == "alert" else e, kind))

        # Rules evaluate every second: retry what has no data yet, up to a deadline.
        pending = {i: q for i, q in enumerate(queries)}
        results = {}
        deadline = time.monotonic() + QUERY_DEADLINE_S
        while pending:
            for i, (w, e, kind) in list(pending.items()):
                res = query(prom_url, e)
                names, archs = expected(e, models)
                if re.match(r"^up\b", e):
                    ok = len(res) == len(models)
                    want = f"{len(models)} targets"
                elif res and "model" in res[0]["metric"]:
                    got = {r["metric"]["model"] for r in res}
                    ok = names <= got
                    want = f"models {sorted(names)}"
                else:
                    got = {r["metric"].get("architecture") for r in res}
                    ok = archs <= got
                    want = f"architectures {sorted(archs)}"
                results[i] = (res, want)
                if ok:
                    del pending[i]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(1)
        if pending:
            targets = json.loads(http_get(f"{prom_url}/api/v1/targets"))["data"]
            failures.append("targets: " + "; ".join(
                f"{t['scrapeUrl']} {t['health']} {t.get('lastError', '')}"
                for t in targets["activeTargets"]))
        for i, (w, e, kind) in pending.items():
            res, want = results[i]
            failures.append(f"{w}: want data for {want}, got "
                            f"{[r['metric'] for r in res]}\n    {e}")
        nan = sum(1 for i, (res, _) in results.items() if i not in pending
                  for r in res if math.isnan(float(r["value"][1])))
        log(f"{len(queries) - len(pending)} of {len(queries)} expressions returned data for "
            f"every model they apply to ({nan} NaN samples)")

        # Cost: all-in (wall time) >= busy-only (device time) > 0 for every model
        # (equal when the device was busy all the time; rate()'s extrapolation of
        # two counters leaves a few percent of noise).
        all_in = {r["metric"]["model"]: float(r["value"][1]) for r in query(
            prom_url, "model_architecture:hybridserve_cost_usd_per_1m_generated_tokens:"
                      "all_in_rate5m")}
        busy = {r["metric"]["model"]: float(r["value"][1]) for r in query(
            prom_url, "model_architecture:hybridserve_cost_usd_per_1m_generated_tokens:"
                      "busy_only_rate5m")}
        log(f"cost per 1M generated tokens (USD): all-in {all_in}, busy-only {busy}")
        for n in models:
            if not (n in busy and n in all_in and all_in[n] >= busy[n] * 0.95 > 0):
                failures.append(f"{n}: want all-in >= busy-only > 0, got all-in "
                                f"{all_in.get(n)} busy-only {busy.get(n)}")

        for proc in procs:
            code = proc.stop()
            if proc.name != "prometheus" and code != 0:
                failures.append(f"{proc.name} exited {code} after SIGTERM\n{proc.tail()}")
        log(f"done in {time.monotonic() - t0:.1f} s")
    finally:
        for proc in procs:
            if proc.p.poll() is None:
                proc.p.kill()
                proc.p.wait()
        if failures or args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
