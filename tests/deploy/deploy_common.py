"""Shared pieces of the deployment tests (tests/deploy/): paths, skipping, the
PromQL expressions of the dashboard and of the rules, and the metric contract of
DESIGN.md section 6.

Exit status of a test script: 0 pass, 1 fail, 77 skipped (reason printed).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SKIP = 77
ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "hybridserve.json"
PROM_DIR = DEPLOY / "prometheus"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))

# DESIGN.md section 6, plus the gauge the busy-only cost needs.
CONTRACT_METRICS = {
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
    "hybridserve_device_busy_seconds_total": "counter",
    "hybridserve_cost_usd_total": "counter",
    "hybridserve_requests": "gauge",
    "hybridserve_kv_cache_blocks": "gauge",
    "hybridserve_ssm_state_slots": "gauge",
    "hybridserve_memory_bytes": "gauge",
    "hybridserve_kv_cache_bytes_per_token": "gauge",
    "hybridserve_ssm_state_bytes_per_sequence": "gauge",
    "hybridserve_cost_per_device_second": "gauge",
}


def skip(reason):
    print(f"SKIPPED: {reason}")
    sys.exit(SKIP)


def require_modules(*names):
    """Skips the test when a Python package of tests/requirements.txt is missing."""
    missing = []
    for n in names:
        try:
            __import__(n)
        except ImportError:
            missing.append(n)
    if missing:
        skip(f"Python package(s) {', '.join(missing)} missing in {sys.executable}; run "
             f"scripts/python_env.sh and configure with -DHS_TEST_PYTHON=<its output>")


def tool(name, given=None, env=None):
    """Path of a command-line tool: the given path, else $env, else PATH; None if absent."""
    for cand in (given, os.environ.get(env) if env else None):
        if cand:
            return cand if os.access(cand, os.X_OK) else None
    return shutil.which(name)


def run(cmd, **kw):
    """subprocess.run with text output; raises AssertionError with the output on failure."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {p.returncode}\n"
                             f"stdout:\n{p.stdout[-4000:]}\nstderr:\n{p.stderr[-4000:]}")
    return p


def server_flags(hybridserve):
    """The flags `hybridserve --help` lists, spelled with dashes."""
    import re
    text = run([hybridserve, "--help"]).stdout
    return {m.replace("_", "-") for m in re.findall(r"^\s*--([a-z0-9_-]+)", text, re.M)}


# ---------------------------------------------------------------------------
# PromQL of the dashboard and the rules.

# Values the template variables take when a query is checked or run outside
# Grafana.
GRAFANA_VARS = {"$model": ".*", "$architecture": ".*", "$__rate_interval": "1m",
                "${datasource}": "prometheus"}


def substitute_grafana_vars(expr, rate_interval="1m"):
    values = dict(GRAFANA_VARS, **{"$__rate_interval": rate_interval})
    # Longest names first ($__rate_interval before $__rate...).
    for k in sorted(values, key=len, reverse=True):
        expr = expr.replace(k, values[k])
    return expr


def dashboard_panels(dashboard=None):
    d = dashboard if dashboard is not None else json.loads(DASHBOARD.read_text())
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows hold their panels
    return out


def dashboard_queries(rate_interval="1m"):
    """[(where, expr)] for every target of every panel, template variables
    substituted."""
    out = []
    for p in dashboard_panels():
        for t in p.get("targets", []):
            out.append((f"dashboard panel {p['id']} '{p['title']}' target {t['refId']}",
                        substitute_grafana_vars(t["expr"], rate_interval)))
    return out


def rule_groups():
    import yaml
    out = []
    for f in RULE_FILES:
        for g in yaml.safe_load(f.read_text())["groups"]:
            out.append((f, g))
    return out


def rule_queries():
    """[(where, expr, kind)]: every recording rule's expression and its recorded
    name, and every alert's expression, kind 'record' | 'recorded' | 'alert'."""
    out = []
    for f, g in rule_groups():
        for r in g["rules"]:
            if "record" in r:
                out.append((f"{f.name} record {r['record']}", r["expr"].strip(), "record"))
                out.append((f"{f.name} recorded series {r['record']}", r["record"], "recorded"))
            else:
                out.append((f"{f.name} alert {r['alert']}", r["expr"].strip(), "alert"))
    return out


def promtool_parse(exprs, promtool):
    """Parses each expression with promtool (as recording rules of a temporary
    rule file). Returns a list of error strings (empty when all parse)."""
    import yaml
    errors = []
    with tempfile.TemporaryDirectory() as d:
        for i, (where, expr) in enumerate(exprs):
            f = Path(d) / f"q{i}.yml"
            f.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": [
                {"record": f"q{i}", "expr": expr}]}]}))
            p = subprocess.run([promtool, "check", "rules", str(f)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            if p.returncode != 0:
                errors.append(f"{where}: {expr}\n  {p.stdout.strip()}")
    return errors
