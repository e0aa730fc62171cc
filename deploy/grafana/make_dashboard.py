#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/hybridserve.json, the Grafana dashboard of
hybridserve's Prometheus metrics (DESIGN.md section 6).

The dashboard is generated so that every panel follows one pattern (a label
selector of the template variables, one unit per panel, legends by model) and so
that a change is a readable diff here rather than in 2,000 lines of JSON. The
committed JSON is what Grafana loads; tests/deploy/dashboard_test.py checks that it
equals this script's output and that every query parses.

    python3 deploy/grafana/make_dashboard.py            # rewrite the JSON
    python3 deploy/grafana/make_dashboard.py --check    # exit 1 if it is stale

Standard library only.
"""
import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards" / "hybridserve.json"

# Every query filters on the two template variables.
SEL = 'model=~"$model", architecture=~"$architecture"'
RATE = "$__rate_interval"
# Cost uses the 5-minute window of DESIGN.md section 6 (and of the recording rules).
COST_WINDOW = "5m"
DS = {"type": "prometheus", "uid": "${datasource}"}


def cost_expr(kind, by):
    """Cost per 1M generated tokens, all-in (wall time x price, idle included) or
    busy-only (device busy time x price), grouped by `by`."""
    tokens = (f"(sum by ({by}) (rate(hybridserve_generation_tokens_total{{{SEL}}}"
              f"[{COST_WINDOW}])) > 0)")
    if kind == "all_in":
        cost = f"sum by ({by}) (rate(hybridserve_cost_usd_total{{{SEL}}}[{COST_WINDOW}]))"
    else:
        cost = (f"sum by ({by}) (rate(hybridserve_device_busy_seconds_total{{{SEL}}}"
                f"[{COST_WINDOW}]) * hybridserve_cost_per_device_second{{{SEL}}})")
    return f"1e6 * {cost} / {tokens}"


def quantiles(metric, by="model", extra_legend=""):
    return [target(f"histogram_quantile({q}, sum by ({by}, le) "
                   f"(rate({metric}_bucket{{{SEL}}}[{RATE}])))",
                   f"{{{{model}}}}{extra_legend} p{int(round(q * 100))}")
            for q in (0.5, 0.9, 0.99)]


def target(expr, legend):
    return {"expr": expr, "legendFormat": legend}


class Layout:
    """Places panels left to right in rows of 24 grid units."""

    def __init__(self):
        self.panels = []
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def row(self, title):
        self._newline()
        self.panels.append({"id": self._id(), "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def _newline(self):
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def panel(self, title, description, targets, unit, w=12, h=8, kind="timeseries",
              stack=False, min_zero=True, legend_calcs=("mean", "lastNotNull")):
        if self.x + w > 24:
            self._newline()
        refs = "ABCDEFGHIJ"
        p = {
            "id": self._id(),
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "targets": [dict(t, refId=refs[i], datasource=DS) for i, t in enumerate(targets)],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        }
        if min_zero:
            p["fieldConfig"]["defaults"]["min"] = 0
        if kind == "timeseries":
            p["fieldConfig"]["defaults"]["custom"] = {
                "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if not stack else 40,
                "showPoints": "never", "spanNulls": True,
                "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            }
            p["options"] = {
                "legend": {"displayMode": "table", "placement": "bottom",
                           "calcs": list(legend_calcs), "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        elif kind == "bargauge":
            p["options"] = {"orientation": "horizontal", "displayMode": "basic",
                            "showUnfilled": True, "valueMode": "color",
                            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                              "values": False}}
            for t in p["targets"]:
                t["instant"] = True
                t["range"] = False
        self.panels.append(p)
        self.x += w
        self.row_h = max(self.row_h, h)


def build():
    L = Layout()

    L.row("Cost per 1M generated tokens (USD)")
    all_in_note = ("All-in: rate(hybridserve_cost_usd_total) / rate(generated tokens) x 1e6 over "
                   "5 minutes. The cost counter runs on wall time x --cost-per-device-hour, so "
                   "idle time is included: what the deployment costs per token it produced.")
    busy_note = ("Busy-only: rate(hybridserve_device_busy_seconds_total) x "
                 "hybridserve_cost_per_device_second / rate(generated tokens) x 1e6 over 5 "
                 "minutes. Only the time the device spent in forward passes is priced: what a "
                 "token costs when the device is kept busy. The load generator's cost per 1M "
                 "tokens (attributed usage.cost_usd) is this one.")
    L.panel("All-in cost per 1M generated tokens, by model", all_in_note,
            [target(cost_expr("all_in", "model, architecture"), "{{model}} ({{architecture}})")],
            "currencyUSD", w=6)
    L.panel("Busy-only cost per 1M generated tokens, by model", busy_note,
            [target(cost_expr("busy_only", "model, architecture"),
                    "{{model}} ({{architecture}})")],
            "currencyUSD", w=6)
    L.panel("All-in cost per 1M generated tokens, by architecture", all_in_note,
            [target(cost_expr("all_in", "architecture"), "{{architecture}}")],
            "currencyUSD", w=6)
    L.panel("Busy-only cost per 1M generated tokens, by architecture", busy_note,
            [target(cost_expr("busy_only", "architecture"), "{{architecture}}")],
            "currencyUSD", w=6)
    L.panel("Cost per 1M generated tokens now: all-in vs busy-only",
            all_in_note + " " + busy_note,
            [target(cost_expr("all_in", "model, architecture"),
                    "{{model}} ({{architecture}}) all-in"),
             target(cost_expr("busy_only", "model, architecture"),
                    "{{model}} ({{architecture}}) busy-only")],
            "currencyUSD", w=12, kind="bargauge")
    L.panel("Device busy fraction",
            "Share of wall time the device spent in forward passes "
            "(rate of hybridserve_device_busy_seconds_total). All-in cost / busy-only cost "
            "is 1 / this fraction.",
            [target(f"sum by (model) (rate(hybridserve_device_busy_seconds_total{{{SEL}}}"
                    f"[{RATE}]))", "{{model}}")],
            "percentunit", w=12)

    L.row("Latency")
    L.panel("Time to first token (p50 / p90 / p99)",
            "Arrival to first generated token (hybridserve_time_to_first_token_seconds).",
            quantiles("hybridserve_time_to_first_token_seconds"), "s")
    L.panel("Inter-token latency (p50 / p90 / p99)",
            "Gap between consecutive tokens of a sequence "
            "(hybridserve_inter_token_latency_seconds).",
            quantiles("hybridserve_inter_token_latency_seconds"), "s")
    L.panel("Request duration (p50 / p90 / p99)",
            "Arrival to finish, all finish reasons (hybridserve_request_duration_seconds).",
            quantiles("hybridserve_request_duration_seconds"), "s")
    L.panel("Queue time (p50 / p90 / p99)",
            "Arrival to first scheduled (hybridserve_request_queue_seconds).",
            quantiles("hybridserve_request_queue_seconds"), "s")

    L.row("Throughput")
    L.panel("Tokens per second: prompt and generated",
            "Prompt tokens (counted once, even if recomputed after a preemption) and "
            "generated tokens per second.",
            [target(f"sum by (model) (rate(hybridserve_prompt_tokens_total{{{SEL}}}[{RATE}]))",
                    "{{model}} prompt"),
             target(f"sum by (model) (rate(hybridserve_generation_tokens_total{{{SEL}}}"
                    f"[{RATE}]))", "{{model}} generated")],
            "short")
    L.panel("Finished requests per second, by finish reason",
            "hybridserve_requests_total by finish_reason (length | stop | eos | cancelled | "
            "error).",
            [target(f"sum by (model, finish_reason) (rate(hybridserve_requests_total{{{SEL}}}"
                    f"[{RATE}]))", "{{model}} {{finish_reason}}")],
            "reqps")

    L.row("Memory and capacity")
    L.panel("Memory: weights vs KV cache vs SSM state",
            "Device memory by pool (hybridserve_memory_bytes). Attention layers keep a KV "
            "cache that grows with every token; SSM layers keep a fixed-size state per "
            "sequence.",
            [target(f"sum by (model, pool) (hybridserve_memory_bytes"
                    f"{{{SEL}, pool=~\"weights|kv_cache|ssm_state|workspace\"}})",
                    "{{model}} {{pool}}")],
            "bytes", stack=True)
    L.panel("Memory shape: KV bytes per token, SSM state bytes per sequence",
            "hybridserve_kv_cache_bytes_per_token (0 without attention layers) and "
            "hybridserve_ssm_state_bytes_per_sequence (0 without SSM layers).",
            [target(f"max by (model) (hybridserve_kv_cache_bytes_per_token{{{SEL}}})",
                    "{{model}} KV bytes / token"),
             target(f"max by (model) (hybridserve_ssm_state_bytes_per_sequence{{{SEL}}})",
                    "{{model}} SSM state bytes / sequence")],
            "bytes", kind="bargauge")
    L.panel("KV cache usage",
            "Used / all KV cache blocks (no line for models without attention layers).",
            [target(f"sum by (model) (hybridserve_kv_cache_blocks{{{SEL}, state=\"used\"}})"
                    f" / (sum by (model) (hybridserve_kv_cache_blocks{{{SEL}}}) > 0)",
                    "{{model}}")],
            "percentunit")
    L.panel("SSM state slots used",
            "State slots in use and in all (no line for models without SSM layers).",
            [target(f"sum by (model) (hybridserve_ssm_state_slots{{{SEL}, state=\"used\"}})",
                    "{{model}} used"),
             target(f"sum by (model) (hybridserve_ssm_state_slots{{{SEL}}})", "{{model}} all")],
            "short")

    L.row("Scheduler")
    L.panel("Requests running and waiting", "hybridserve_requests by state.",
            [target(f"sum by (model, state) (hybridserve_requests{{{SEL}}})",
                    "{{model}} {{state}}")],
            "short")
    L.panel("Batch size per step (mean)",
            "Mean tokens and sequences per forward pass (hybridserve_batch_tokens, "
            "hybridserve_batch_sequences).",
            [target(f"sum by (model) (rate(hybridserve_batch_tokens_sum{{{SEL}}}[{RATE}])) / "
                    f"(sum by (model) (rate(hybridserve_batch_tokens_count{{{SEL}}}[{RATE}]))"
                    f" > 0)", "{{model}} tokens"),
             target(f"sum by (model) (rate(hybridserve_batch_sequences_sum{{{SEL}}}[{RATE}])) "
                    f"/ (sum by (model) (rate(hybridserve_batch_sequences_count{{{SEL}}}"
                    f"[{RATE}])) > 0)", "{{model}} sequences")],
            "short")
    L.panel("Preemptions per second",
            "Sequences preempted (their KV blocks or state slot taken back) per second.",
            [target(f"sum by (model) (rate(hybridserve_preemptions_total{{{SEL}}}[{RATE}]))",
                    "{{model}}")],
            "short")
    L.panel("Engine step time by phase (p50 / p99)",
            "One forward pass (hybridserve_engine_step_seconds) by phase: prefill, decode, "
            "mixed.",
            [target(f"histogram_quantile({q}, sum by (model, phase, le) "
                    f"(rate(hybridserve_engine_step_seconds_bucket{{{SEL}}}[{RATE}])))",
                    f"{{{{model}}}} {{{{phase}}}} p{int(q * 100)}") for q in (0.5, 0.99)],
            "s")

    def variable(name, label, query):
        return {
            "name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"{name}-var"},
            "definition": query, "refresh": 2, "multi": True, "includeAll": True,
            "allValue": ".*", "current": {"selected": True, "text": ["All"],
                                          "value": ["$__all"]},
            "sort": 1, "hide": 0, "options": [], "regex": "",
        }

    return {
        "uid": "hybridserve-cost",
        "title": "hybridserve: cost per token",
        "description": "Cost per generated token, latency, throughput and memory of "
                       "hybridserve, by model and by architecture (transformer | ssm | "
                       "hybrid). Generated by deploy/grafana/make_dashboard.py.",
        "tags": ["hybridserve", "llm"],
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource",
             "query": "prometheus", "current": {}, "hide": 0, "options": [], "refresh": 1,
             "regex": ""},
            variable("architecture", "Architecture",
                     "label_values(hybridserve_memory_bytes, architecture)"),
            variable("model", "Model",
                     'label_values(hybridserve_memory_bytes{architecture=~"$architecture"}, '
                     'model)'),
        ]},
        "panels": L.panels,
    }


def render():
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when the committed JSON differs from this script's output")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    text = render()
    if args.check:
        if not args.out.exists() or args.out.read_text() != text:
            print(f"{args.out} is stale: run python3 {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
