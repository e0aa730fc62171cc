"""The Dockerfile, checked without a Docker engine:
* stages: an nvidia/cuda devel image builds, an nvidia/cuda runtime image runs;
  the runtime stage copies the binaries and the bundled libraries from the build
  stage, puts them on PATH / LD_LIBRARY_PATH, runs as a non-root user, has the
  model folder as a VOLUME, and hybridserve as its ENTRYPOINT;
* every flag of its CMD is one `hybridserve --help` lists, the EXPOSEd ports are
  exactly the port flags' values, and --model is the VOLUME;
* deploy/docker/bundle_libs.sh, which the build stage runs, on the local build:
  every library `ldd` lists is either bundled or part of the runtime image's own
  set (glibc, CUDA), and the binaries start in a root folder that holds nothing
  but glibc and the bundle (chroot; skipped when not permitted): `--help`, the
  tiny-model maker, and the server up to ready on the tiny model.

  python3 tests/deploy/dockerfile_test.py --hybridserve PATH --hs_make_tiny_model PATH
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import deploy_common as dc

ARGS = None
DOCKERFILE = dc.ROOT / "Dockerfile"
BUNDLE = dc.DEPLOY / "docker" / "bundle_libs.sh"
# What bundle_libs.sh leaves to the runtime image (keep in step with its regex).
PROVIDED = re.compile(r"^(linux-vdso|linux-gate|ld-linux[-a-z0-9_]*|libc|libm|libmvec|libdl|libpthread|"
                      r"librt|libresolv|libutil|libanl|libnsl|libnss_[a-z]+|libBrokenLocale|"
                      r"libcuda|libnvidia-[a-z0-9-]+|libcudart|libcublas|libcublasLt|libcufft|"
                      r"libcurand|libcusolver|libcusparse|libnvrtc|libnvJitLink|libnpp[a-z]*|"
                      r"libnvToolsExt)\.so")
GLIBC = re.compile(r"^(ld-linux|libc|libm|libmvec|libdl|libpthread|librt|libresolv)[.-]")


def parse_dockerfile(text):
    """[(stage_name, from_image, [(INSTRUCTION, args)])], line continuations joined."""
    text = re.sub(r"\\\n", " ", text)
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.I)
            stages.append((m.group(2), m.group(1), []))
        elif stages:
            stages[-1][2].append((instr, rest.strip()))
    return stages


def exec_form(arg):
    arg = arg.strip()
    return json.loads(arg) if arg.startswith("[") else shlex.split(arg)


def ldd(binary):
    out = dc.run(["ldd", str(binary)]).stdout
    libs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)", line)
        if m:
            libs[m.group(1)] = m.group(2)
        else:
            m = re.match(r"\s*(/\S+)", line)
            if m:
                libs[Path(m.group(1)).name] = m.group(1)
    return libs


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stages = parse_dockerfile(DOCKERFILE.read_text())
        cls.build = cls.stages[0]
        cls.runtime = cls.stages[-1]

    def instr(self, stage, name):
        return [a for i, a in stage[2] if i == name]

    def test_stages(self):
        self.assertGreaterEqual(len(self.stages), 2)
        self.assertRegex(self.build[1], r"^nvidia/cuda:\$\{CUDA_VERSION\}-devel-")
        self.assertRegex(self.runtime[1], r"^nvidia/cuda:\$\{CUDA_VERSION\}-runtime-")
        text = DOCKERFILE.read_text()
        m = re.search(r"^ARG CUDA_VERSION=(\d+)\.(\d+)\.(\d+)$", text, re.M)
        self.assertTrue(m, "ARG CUDA_VERSION=MAJOR.MINOR.PATCH before the first FROM")
        self.assertEqual(m.group(1), "13", "CUDA 13 images")
        # The build stage builds the binaries and bundles their libraries.
        runs = " ".join(self.instr(self.build, "RUN"))
        for target in ("hybridserve", "hs_make_tiny_model"):
            self.assertIn(target, runs)
        self.assertIn("deploy/docker/bundle_libs.sh /opt/hybridserve/lib", runs)
        bundled = runs.split("deploy/docker/bundle_libs.sh /opt/hybridserve/lib", 1)[1]
        for b in ("hybridserve", "hs_make_tiny_model", "hs_client"):
            self.assertIn(f"/opt/hybridserve/bin/{b}", bundled, f"{b} not bundled")

    def test_runtime_stage(self):
        rt = self.runtime
        copies = self.instr(rt, "COPY")
        self.assertIn(f"--from={self.build[0]} /opt/hybridserve /opt/hybridserve", copies)
        env = " ".join(self.instr(rt, "ENV"))
        self.assertRegex(env, r"PATH=/opt/hybridserve/bin:")
        self.assertRegex(env, r"LD_LIBRARY_PATH=/opt/hybridserve/lib(:|\s|$)")
        (user,) = self.instr(rt, "USER")
        self.assertNotIn(user.split(":")[0], ("0", "root"), "runs as root")
        (entry,) = self.instr(rt, "ENTRYPOINT")
        self.assertEqual(exec_form(entry), ["hybridserve"])

    def test_flags_ports_volume(self):
        (cmd,) = self.instr(self.runtime, "CMD")
        flags = {}
        for a in exec_form(cmd):
            m = re.match(r"^--([a-z0-9_-]+)=(.*)$", a)
            self.assertTrue(m, f"CMD argument {a!r} is not --flag=value")
            flags[m.group(1).replace("_", "-")] = m.group(2)
        if ARGS.hybridserve:
            known = dc.server_flags(ARGS.hybridserve)
            for f in flags:
                self.assertIn(f, known, f"CMD flag --{f} is not in hybridserve --help")
        exposed = {int(p.split("/")[0]) for e in self.instr(self.runtime, "EXPOSE")
                   for p in e.split()}
        ports = {int(flags[f]) for f in ("port", "metrics-port", "health-port") if f in flags}
        self.assertEqual(exposed, ports)
        volumes = [v for e in self.instr(self.runtime, "VOLUME") for v in exec_form(e)]
        self.assertIn(flags["model"], volumes)

    def test_bundle_is_complete(self):
        binaries = [ARGS.hybridserve, ARGS.hs_make_tiny_model]
        if not all(binaries):
            self.skipTest("needs --hybridserve and --hs_make_tiny_model")
        with tempfile.TemporaryDirectory() as d:
            root = Path(d) / "root"
            lib = root / "opt/hybridserve/lib"
            out = dc.run([str(BUNDLE), str(lib), *binaries]).stdout
            bundled = {Path(l).name for l in out.split()}
            self.assertEqual(bundled, {p.name for p in lib.iterdir()})
            needed = {}
            for b in binaries:
                needed.update(ldd(b))
            for name, path in sorted(needed.items()):
                if PROVIDED.match(name):
                    continue
                self.assertIn(name, bundled, f"{name} ({path}) is neither bundled nor provided "
                              f"by the runtime image")
            self.run_in_chroot(root, binaries, needed)

    def run_in_chroot(self, root, binaries, needed):
        """A root folder with glibc, the bundle and the binaries only."""
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        bindir = root / "opt/hybridserve/bin"
        bindir.mkdir(parents=True)
        for b in binaries:
            shutil.copy2(b, bindir)
        (root / "tmp").mkdir()
        for name, path in needed.items():
            if GLIBC.match(name) and Path(path).is_absolute():
                dest = root / path.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(os.path.realpath(path), dest)
        env = {"LD_LIBRARY_PATH": "/opt/hybridserve/lib", "PATH": "/opt/hybridserve/bin"}
        probe = subprocess.run([chroot, str(root), "/opt/hybridserve/bin/hybridserve", "--help"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
        if probe.returncode != 0 and ("Operation not permitted" in probe.stdout
                                      or "cannot change root" in probe.stdout):
            self.skipTest(f"chroot not permitted here: {probe.stdout.strip()}")
        self.assertEqual(probe.returncode, 0, probe.stdout)
        self.assertIn("--model", probe.stdout)
        dc.run([chroot, str(root), "hs_make_tiny_model", "--preset", "tiny", "--out",
                "/tmp/model"], env=env)
        # The server loads the model and becomes ready (then SIGTERM).
        proc = subprocess.Popen([chroot, str(root), "hybridserve", "--model", "/tmp/model",
                                 "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
                                 "--ready-file", "/tmp/ready", "--threads", "1",
                                 "--kv-cache-bytes", str(8 << 20)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ready = root / "tmp/ready"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if ready.exists() and ready.read_text().strip():
                    break
                time.sleep(0.05)
            self.assertTrue(ready.exists(), f"server in chroot not ready; exit {proc.poll()}")
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, out[-3000:])


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
