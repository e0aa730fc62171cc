"""Grafana dashboard and provisioning files (deploy/grafana/):
* the committed JSON equals deploy/grafana/make_dashboard.py's output;
* the dashboard's structure: unique panel ids, panels inside the 24-column grid
  and not overlapping, every target with a refId and an expression, the
  datasource / model / architecture template variables used by every query;
* the panels the issue asks for are there (cost per 1M generated tokens all-in
  and busy-only, by model and by architecture; TTFT and inter-token p50/p90/p99;
  memory by pool; KV usage; state slots; running / waiting; batch size;
  preemptions; queue time; prompt and generated tokens/s);
* every query uses only metrics of the contract (DESIGN.md section 6) and parses
  (promtool, skipped when the Debian package prometheus is missing);
* the provisioning files name a Prometheus data source and a file provider.

  python3 tests/deploy/dashboard_test.py [--promtool PATH]
"""
import argparse
import json
import re
import subprocess
import sys
import unittest

import deploy_common as dc

ARGS = None


class DashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = json.loads(dc.DASHBOARD.read_text())
        cls.panels = dc.dashboard_panels(cls.d)
        cls.graphs = [p for p in cls.panels if p["type"] != "row"]

    def test_generated_json_is_current(self):
        p = subprocess.run([sys.executable, str(dc.DEPLOY / "grafana" / "make_dashboard.py"),
                            "--check"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        self.assertEqual(p.returncode, 0, p.stdout)

    def test_layout(self):
        ids = [p["id"] for p in self.panels]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
        cells = {}
        for p in self.panels:
            g = p["gridPos"]
            self.assertGreaterEqual(g["x"], 0)
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    self.assertNotIn((x, y), cells,
                                     f"'{p['title']}' overlaps '{cells.get((x, y))}'")
                    cells[(x, y)] = p["title"]

    def test_targets_and_variables(self):
        names = [v["name"] for v in self.d["templating"]["list"]]
        self.assertEqual(names, ["datasource", "architecture", "model"])
        for v in self.d["templating"]["list"][1:]:
            self.assertTrue(v["multi"] and v["includeAll"], v["name"])
            self.assertIn("hybridserve_", v["query"]["query"])
        for p in self.graphs:
            self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
            self.assertTrue(p.get("targets"), f"'{p['title']}' has no query")
            self.assertTrue(p.get("title") and p.get("description"), p["id"])
            refs = [t["refId"] for t in p["targets"]]
            self.assertEqual(len(refs), len(set(refs)), p["title"])
            for t in p["targets"]:
                self.assertIn('model=~"$model"', t["expr"], p["title"])
                self.assertIn('architecture=~"$architecture"', t["expr"], p["title"])
                self.assertTrue(t.get("legendFormat"), p["title"])

    def test_required_panels(self):
        titles = [p["title"] for p in self.graphs]

        def has(*words):
            ok = any(all(w.lower() in t.lower() for w in words) for t in titles)
            self.assertTrue(ok, f"no panel whose title has {words}; titles: {titles}")

        for kind in ("All-in", "Busy-only"):
            has(kind, "cost per 1M generated tokens", "by model")
            has(kind, "cost per 1M generated tokens", "by architecture")
        has("Time to first token", "p50", "p90", "p99")
        has("Inter-token", "p50", "p90", "p99")
        has("Queue time")
        has("prompt", "generated", "second")
        has("Memory", "weights", "KV cache", "SSM state")
        has("KV cache usage")
        has("state slots used")
        has("running", "waiting")
        has("Batch size")
        has("Preemptions")
        # The two cost kinds are side by side in one row.
        cost = [p for p in self.graphs if "cost per 1M" in p["title"]
                and p["type"] == "timeseries"]
        self.assertEqual(len({p["gridPos"]["y"] for p in cost}), 1,
                         "cost panels should share a row")
        # Each cost panel says which cost it is in its description.
        for p in cost:
            kind = "All-in" if p["title"].startswith("All-in") else "Busy-only"
            self.assertIn(kind + ":", p["description"])
        busy = [t["expr"] for p in cost if p["title"].startswith("Busy-only")
                for t in p["targets"]]
        self.assertTrue(all("hybridserve_cost_per_device_second" in e for e in busy))

    def test_queries_use_contract_metrics(self):
        known = set()
        for name, kind in dc.CONTRACT_METRICS.items():
            known.add(name)
            if kind == "histogram":
                known |= {name + "_bucket", name + "_sum", name + "_count"}
        for where, expr in dc.dashboard_queries():
            for m in re.findall(r"\b(hybridserve_[a-z0-9_]+)", expr):
                self.assertIn(m, known, f"{where}: {m} is not a metric of DESIGN.md section 6")

    def test_queries_parse(self):
        promtool = dc.tool("promtool", ARGS.promtool, "PROMTOOL")
        if not promtool:
            self.skipTest("promtool not found (Debian package prometheus)")
        queries = dc.dashboard_queries()
        queries += [(f"variable {v['name']}", re.sub(r"label_values\((.*), *\w+\)", r"\1",
                                                      v["query"]["query"]))
                    for v in self.d["templating"]["list"][1:]]
        queries = [(w, dc.substitute_grafana_vars(e)) for w, e in queries]
        errors = dc.promtool_parse(queries, promtool)
        self.assertEqual(errors, [], "\n".join(errors))

    def test_provisioning(self):
        import yaml
        ds = yaml.safe_load((dc.DEPLOY / "grafana/provisioning/datasources/prometheus.yaml")
                            .read_text())
        self.assertEqual(ds["apiVersion"], 1)
        self.assertEqual([d["type"] for d in ds["datasources"]], ["prometheus"])
        prov = yaml.safe_load((dc.DEPLOY / "grafana/provisioning/dashboards/hybridserve.yaml")
                              .read_text())
        self.assertEqual(prov["apiVersion"], 1)
        (p,) = prov["providers"]
        self.assertEqual(p["type"], "file")
        self.assertTrue(p["options"]["path"].startswith("/"))


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--promtool")
    ARGS, rest = ap.parse_known_args()
    dc.require_modules("yaml")
    r = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2).result
    sys.exit(0 if r.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
