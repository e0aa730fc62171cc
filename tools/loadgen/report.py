"""Summaries of load generator runs: percentiles, throughput, cost, and the
comparison table of several runs. Standard library only, so that `compare` runs
anywhere (no grpcio needed).
"""
import json
import math
from collections import Counter


def percentile(values, q):
    """The q-th percentile (0..100) with linear interpolation between closest
    ranks (numpy's default); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def distribution(values):
    """count, mean, p50, p90, p99, max of a list of numbers (None entries when empty)."""
    return {
        "count": len(values),
        "mean": sum(values) / len(values) if values else None,
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def summarize(records, wall_seconds):
    """Summary of the measured requests. Each record is a dict with keys: ok,
    status, finish_reason, ttft_s, itl_s (list), e2e_s, completion_tokens (tokens
    the client received), usage (dict of the final Usage, or None)."""
    ok = [r for r in records if r["ok"]]
    errors = Counter(r["status"] for r in records if not r["ok"])
    finish = Counter(r["finish_reason"] for r in ok)
    ttft = [r["ttft_s"] for r in ok if r["ttft_s"] is not None]
    itl = [g for r in ok for g in r["itl_s"]]
    e2e = [r["e2e_s"] for r in ok]
    usages = [r["usage"] for r in ok if r["usage"]]
    gen_tokens = sum(r["completion_tokens"] for r in ok)
    prompt_tokens = sum(u["prompt_tokens"] for u in usages)
    usage_completion = sum(u["completion_tokens"] for u in usages)
    cost = sum(u["cost_usd"] for u in usages)
    device_s = sum(u["device_seconds"] for u in usages)
    wall = wall_seconds if wall_seconds > 0 else float("nan")

    def per_1m(tokens):
        return 1e6 * cost / tokens if tokens else None

    return {
        "requests": len(records),
        "ok": len(ok),
        "errors": dict(sorted(errors.items())),
        "finish_reasons": dict(sorted(finish.items())),
        "wall_seconds": wall_seconds,
        "request_throughput": len(ok) / wall,
        "generated_tokens": gen_tokens,
        "prompt_tokens": prompt_tokens,
        "generated_tokens_per_second": gen_tokens / wall,
        "prompt_tokens_per_second": prompt_tokens / wall,
        "ttft_seconds": distribution(ttft),
        "inter_token_seconds": distribution(itl),
        "e2e_seconds": distribution(e2e),
        # As the server measured them (usage of the last response).
        "server_queue_seconds": distribution([u["queue_seconds"] for u in usages]),
        "server_first_token_seconds": distribution([u["first_token_seconds"] for u in usages]),
        "server_total_seconds": distribution([u["total_seconds"] for u in usages]),
        # Attributed cost: each step's device time split among its sequences by
        # tokens processed, times --cost-per-device-hour (idle time excluded).
        "device_seconds": device_s,
        "cost_usd": cost,
        "cost_per_1m_generated_tokens_usd": per_1m(usage_completion),
        "cost_per_1m_total_tokens_usd": per_1m(usage_completion + prompt_tokens),
    }


# ---------------------------------------------------------------------------
# Comparison table.

def _ms(x):
    return "-" if x is None else f"{x * 1e3:.1f}"


def _s(x):
    return "-" if x is None else f"{x:.3f}"


def _num(fmt):
    return lambda x: "-" if x is None else format(x, fmt)


def _usd(x):
    if x is None:
        return "-"
    return f"{x:.4g}"


def _errors(d):
    return ", ".join(f"{k} {v}" for k, v in d.items()) if d else "0"


def _load(run):
    c = run["config"]
    if c["mode"] == "closed":
        return f"closed, {c['concurrency']} streams"
    return f"open, {c['rate']:g} req/s"


# (row title, function of the run dict)
ROWS = [
    ("model", lambda r: r["model"].get("name", "?")),
    ("architecture", lambda r: (f"{r['model'].get('family', '?')} "
                                f"({r['model'].get('architecture', '?')})")),
    ("device", lambda r: r["model"].get("device", "?")),
    ("load", _load),
    ("requests ok / sent", lambda r: f"{r['summary']['ok']} / {r['summary']['requests']}"),
    ("errors", lambda r: _errors(r["summary"]["errors"])),
    ("requests/s", lambda r: _num(".2f")(r["summary"]["request_throughput"])),
    ("generated tokens/s", lambda r: _num(".1f")(r["summary"]["generated_tokens_per_second"])),
    ("prompt tokens/s", lambda r: _num(".1f")(r["summary"]["prompt_tokens_per_second"])),
]
for _key, _title, _fmt in (("ttft_seconds", "TTFT", _ms),
                           ("inter_token_seconds", "inter-token", _ms),
                           ("e2e_seconds", "end-to-end", _s)):
    _unit = "ms" if _fmt is _ms else "s"
    for _q in ("p50", "p90", "p99"):
        ROWS.append((f"{_title} {_q} ({_unit})",
                     lambda r, k=_key, q=_q, f=_fmt: f(r["summary"][k][q])))
ROWS += [
    ("device seconds (attributed)", lambda r: _num(".3f")(r["summary"]["device_seconds"])),
    ("cost / 1M generated tokens (USD, attributed)",
     lambda r: _usd(r["summary"]["cost_per_1m_generated_tokens_usd"])),
    ("cost / 1M prompt+generated tokens (USD)",
     lambda r: _usd(r["summary"]["cost_per_1m_total_tokens_usd"])),
]


def compare_table(runs, fmt="markdown"):
    """One table: a row per metric, a column per run (its label)."""
    headers = ["metric"] + [r.get("label") or r["model"].get("name", "?") for r in runs]
    rows = [[title] + [fn(r) for r in runs] for title, fn in ROWS]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    if fmt == "tsv":
        return "\n".join("\t".join(map(str, row)) for row in [headers] + rows) + "\n"

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out) + "\n"


def load_runs(paths):
    runs = []
    for p in paths:
        with open(p) as f:
            run = json.load(f)
        if "summary" not in run or "config" not in run:
            raise ValueError(f"{p}: not a load generator report (no summary/config)")
        runs.append(run)
    return runs


def text_report(run):
    """Human-readable report of one run."""
    s = run["summary"]
    m = run["model"]
    lines = [
        f"model {m.get('name')} ({m.get('family')}, {m.get('architecture')}, "
        f"{m.get('device')}, {m.get('dtype')}) at {run['target']}",
        f"load: {_load(run)}; measured {s['requests']} requests in {s['wall_seconds']:.2f} s "
        f"(after {run['config']['warmup_requests']} warm-up requests)",
        f"ok {s['ok']}, errors: {_errors(s['errors'])}; finish reasons: "
        + (", ".join(f"{k} {v}" for k, v in s["finish_reasons"].items()) or "-"),
        f"throughput: {s['request_throughput']:.2f} requests/s, "
        f"{s['generated_tokens_per_second']:.1f} generated tokens/s, "
        f"{s['prompt_tokens_per_second']:.1f} prompt tokens/s",
    ]
    for key, title, f, unit in (("ttft_seconds", "TTFT", _ms, "ms"),
                                ("inter_token_seconds", "inter-token", _ms, "ms"),
                                ("e2e_seconds", "end-to-end", _s, "s"),
                                ("server_queue_seconds", "server queue", _ms, "ms")):
        d = s[key]
        lines.append(f"{title:>13} ({unit}): p50 {f(d['p50'])}  p90 {f(d['p90'])}  "
                     f"p99 {f(d['p99'])}  max {f(d['max'])}  (n={d['count']})")
    lines.append(f"cost (attributed device time x price): {_usd(s['cost_usd'])} USD; per 1M "
                 f"generated tokens {_usd(s['cost_per_1m_generated_tokens_usd'])} USD; per 1M "
                 f"prompt+generated tokens {_usd(s['cost_per_1m_total_tokens_usd'])} USD")
    return "\n".join(lines) + "\n"
