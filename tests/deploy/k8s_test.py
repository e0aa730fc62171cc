"""Kubernetes manifests (deploy/k8s/): every kustomization (the base, each overlay,
the prometheus-adapter rule) renders with `kubectl kustomize`, and every rendered
object validates:
* built-in kinds with kubernetes-validate (strict: unknown fields fail) against
  Kubernetes 1.27 (the first with gRPC probes GA) and the newest it knows;
* ServiceMonitor against deploy/k8s/schemas/servicemonitor-monitoring-v1.json;
* no other custom kind may appear (none is left unchecked).
Then what ties the objects together: the GPU request and its absence on the CPU
overlay, gRPC probes on the gRPC port, terminationGracePeriodSeconds longer than
--drain-timeout, container ports equal to the port flags, every flag known to
`hybridserve --help` (when the binary is given), Service and ServiceMonitor ports,
the HPA's custom metric equal to the prometheus-adapter rule's name, and the
dashboard ConfigMap equal to deploy/grafana/dashboards/hybridserve.json.

  python3 tests/deploy/k8s_test.py [--kubectl PATH] [--hybridserve PATH]
"""
import argparse
import json
import re
import subprocess
import sys
import unittest

import deploy_common as dc

ARGS = None
K8S = dc.DEPLOY / "k8s"
KUBE_VERSIONS = ("1.27.0", None)  # None = the newest kubernetes-validate knows
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"):
               K8S / "schemas" / "servicemonitor-monitoring-v1.json"}


def kustomizations():
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


def render(kubectl, path):
    import yaml
    p = dc.run([kubectl, "kustomize", str(path)])
    return [d for d in yaml.safe_load_all(p.stdout) if d]


def flags_of(args):
    out = {}
    for a in args:
        m = re.match(r"^--([a-z0-9_-]+)(?:=(.*))?$", a)
        assert m, f"argument {a!r} is not --flag=value"
        out[m.group(1).replace("_", "-")] = m.group(2)
    return out


class K8sTest(unittest.TestCase):
    rendered = {}

    @classmethod
    def setUpClass(cls):
        for k in kustomizations():
            cls.rendered[k.relative_to(K8S).as_posix()] = render(ARGS.kubectl, k)

    def objects(self, kind, where=None):
        return [(w, o) for w, objs in self.rendered.items() for o in objs
                if o["kind"] == kind and (where is None or w == where)]

    def test_all_kustomizations_render(self):
        self.assertIn("base", self.rendered)
        self.assertIn("overlays/cpu-demo", self.rendered)
        self.assertIn("prometheus-adapter", self.rendered)
        for where in ("base", "overlays/cpu-demo"):
            kinds = sorted(o["kind"] for o in self.rendered[where])
            self.assertEqual(kinds, sorted(["ConfigMap", "Deployment", "HorizontalPodAutoscaler",
                                            "PodDisruptionBudget", "Service", "ServiceMonitor"]),
                             where)

    def test_objects_validate(self):
        import jsonschema
        import kubernetes_validate as kv
        versions = [v or kv.latest_version() for v in KUBE_VERSIONS]
        checked = 0
        for where, objs in self.rendered.items():
            for o in objs:
                name = f"{where}: {o['kind']} {o['metadata'].get('name')}"
                crd = CRD_SCHEMAS.get((o["apiVersion"], o["kind"]))
                if crd:
                    schema = json.loads(crd.read_text())
                    try:
                        jsonschema.validate(o, schema)
                    except jsonschema.ValidationError as e:
                        self.fail(f"{name} against {crd.name}: {e.message} at "
                                  f"{'/'.join(map(str, e.absolute_path))}")
                    checked += 1
                    continue
                for v in versions:
                    try:
                        kv.validate(o, v, strict=True)
                    except kv.SchemaNotFoundError:
                        self.fail(f"{name}: no Kubernetes {v} schema for {o['apiVersion']} "
                                  f"{o['kind']}, and no schema for it in deploy/k8s/schemas")
                    except kv.ValidationError as e:
                        self.fail(f"{name} (Kubernetes {v}): {e.message} at "
                                  f"{'/'.join(map(str, e.path))}")
                checked += 1
        # The example claim is outside every kustomization: check it too.
        import yaml
        for f in sorted((K8S / "examples").glob("*.yaml")):
            for o in yaml.safe_load_all(f.read_text()):
                for v in versions:
                    kv.validate(o, v, strict=True)
                checked += 1
        print(f"  {checked} objects validated (Kubernetes {', '.join(versions)}; CRDs against "
              f"{', '.join(p.name for p in CRD_SCHEMAS.values())})")

    def container(self, where):
        ((_, dep),) = self.objects("Deployment", where)
        spec = dep["spec"]["template"]["spec"]
        (c,) = [c for c in spec["containers"] if c["name"] == "hybridserve"]
        return dep, spec, c

    def test_gpu_and_cpu(self):
        _, spec, c = self.container("base")
        for k in ("requests", "limits"):
            self.assertEqual(str(c["resources"][k]["nvidia.com/gpu"]), "1")
        self.assertEqual(flags_of(c["args"])["device"], "cuda")
        vols = {v["name"]: v for v in spec["volumes"]}
        self.assertIn("persistentVolumeClaim", vols["model"])

        _, spec, c = self.container("overlays/cpu-demo")
        for k in ("requests", "limits"):
            self.assertNotIn("nvidia.com/gpu", c["resources"].get(k, {}))
        self.assertEqual(flags_of(c["args"])["device"], "cpu")
        self.assertNotIn("tolerations", spec)
        vols = {v["name"]: v for v in spec["volumes"]}
        self.assertEqual(set(vols["model"]) - {"name"}, {"emptyDir"})
        (init,) = spec["initContainers"]
        self.assertEqual(init["command"][0], "hs_make_tiny_model")
        self.assertIn("demo", init["command"])
        self.assertEqual(init["image"], c["image"])
        out = init["command"][init["command"].index("--out") + 1]
        self.assertEqual(out, flags_of(c["args"])["model"])

    def test_probes_ports_flags(self):
        help_flags = dc.server_flags(ARGS.hybridserve) if ARGS.hybridserve else None
        for where in ("base", "overlays/cpu-demo"):
            _, spec, c = self.container(where)
            flags = flags_of(c["args"])
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            self.assertEqual(ports["grpc"], int(flags["port"]), where)
            self.assertEqual(ports["metrics"], int(flags["metrics-port"]), where)
            # Probes: gRPC health on the plaintext health port when there is one,
            # else on the main port (no TLS in these manifests).
            probe_port = int(flags.get("health-port") or flags["port"])
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                self.assertIn(probe, c, where)
                self.assertEqual(c[probe]["grpc"]["port"], probe_port, f"{where} {probe}")
            drain = float(flags["drain-timeout"])
            self.assertGreater(spec["terminationGracePeriodSeconds"], drain + 5, where)
            # A draining server reports NOT_SERVING: liveness must outlast the drain.
            live = c["livenessProbe"]
            self.assertGreater(live["periodSeconds"] * live["failureThreshold"], drain, where)
            model_mount = [m for m in c["volumeMounts"] if m["name"] == "model"]
            self.assertEqual(model_mount[0]["mountPath"], flags["model"])
            if help_flags is not None:
                for f in flags:
                    self.assertIn(f, help_flags,
                                  f"{where}: flag --{f} is not in hybridserve --help")

    def test_service_monitor_hpa_adapter(self):
        import yaml
        for where in ("base", "overlays/cpu-demo"):
            dep, _, c = self.container(where)
            ((_, svc),) = self.objects("Service", where)
            ((_, sm),) = self.objects("ServiceMonitor", where)
            ((_, hpa),) = self.objects("HorizontalPodAutoscaler", where)
            ((_, pdb),) = self.objects("PodDisruptionBudget", where)
            pod_labels = dep["spec"]["template"]["metadata"]["labels"]
            for sel in (svc["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
                self.assertLessEqual(sel.items(), pod_labels.items(), where)
            cports = {p["name"] for p in c["ports"]}
            sports = {p["name"] for p in svc["spec"]["ports"]}
            for p in svc["spec"]["ports"]:
                self.assertIn(p["targetPort"], cports, where)
            for e in sm["spec"]["endpoints"]:
                self.assertIn(e["port"], sports, where)
                self.assertEqual(e.get("path", "/metrics"), "/metrics")
            self.assertLessEqual(sm["spec"]["selector"]["matchLabels"].items(),
                                 svc["metadata"]["labels"].items(), where)
            ref = hpa["spec"]["scaleTargetRef"]
            self.assertEqual((ref["kind"], ref["name"]), ("Deployment", dep["metadata"]["name"]))
            (metric,) = hpa["spec"]["metrics"]
            self.assertEqual(metric["type"], "Pods")
            hpa_metric = metric["pods"]["metric"]["name"]

            ((_, cm),) = [(w, o) for w, o in self.objects("ConfigMap", where)]
            self.assertEqual(cm["metadata"]["labels"].get("grafana_dashboard"), "1")
            (text,) = cm["data"].values()
            self.assertEqual(json.loads(text), json.loads(dc.DASHBOARD.read_text()))

        ((_, adapter),) = self.objects("ConfigMap", "prometheus-adapter")
        rules = yaml.safe_load(adapter["data"]["config.yaml"])["rules"]
        names = [r["name"]["as"] for r in rules]
        self.assertIn(hpa_metric, names)
        (rule,) = [r for r in rules if r["name"]["as"] == hpa_metric]
        self.assertIn('hybridserve_requests{state="waiting"', rule["seriesQuery"])
        self.assertIn('state="waiting"', rule["metricsQuery"])
        self.assertEqual(set(rule["resources"]["overrides"]), {"namespace", "pod"})
        self.assertRegex("hybridserve_requests", rule["name"]["matches"])


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubectl")
    ap.add_argument("--hybridserve")
    ARGS, rest = ap.parse_known_args()
    dc.require_modules("yaml", "jsonschema", "kubernetes_validate")
    ARGS.kubectl = dc.tool("kubectl", ARGS.kubectl, "KUBECTL")
    if not ARGS.kubectl:
        dc.skip("kubectl not found (Debian package kubernetes-client; scripts/setup.sh "
                "installs it)")
    v = subprocess.run([ARGS.kubectl, "version", "--client"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True).stdout.splitlines()
    print(f"kubectl: {ARGS.kubectl}: {v[0] if v else '?'}")
    r = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2).result
    sys.exit(0 if r.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
