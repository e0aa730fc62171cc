"""Shared pieces of the integration tests: binaries, Python stubs, tiny models, a
server process started on a free loopback port, and request helpers.

Binaries come from the command line (--hybridserve, --hs_client,
--hs_make_tiny_model, --hs_run_offline, as tests/python_tests.cmake passes
them), else from the environment (HS_SERVER_BIN, HS_CLIENT_BIN,
HS_MAKE_TINY_MODEL_BIN, HS_RUN_OFFLINE_BIN), else from build/ in the checkout.
Exit status of a test script: 0 pass, 1 fail, 77 skipped (reason printed).
"""
import argparse
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

SKIP = 77
ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"

try:
    import grpc
    from grpc_tools import protoc
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: F401
    import grpc_reflection  # noqa: F401
except ImportError as e:  # the venv lacks the pinned packages
    print(f"SKIPPED: {e}; the integration tests need grpcio, grpcio-tools, "
          f"grpcio-health-checking and grpcio-reflection from tests/requirements.txt "
          f"(run scripts/python_env.sh and configure with -DHS_TEST_PYTHON=<its output>); "
          f"interpreter: {sys.executable}")
    sys.exit(SKIP)

_WORK = Path(tempfile.mkdtemp(prefix="hs_integration_"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)

BINARIES = {
    "hybridserve": ("HS_SERVER_BIN", ROOT / "build/server/hybridserve"),
    "hs_client": ("HS_CLIENT_BIN", ROOT / "build/tools/hs_client"),
    "hs_make_tiny_model": ("HS_MAKE_TINY_MODEL_BIN", ROOT / "build/tools/hs_make_tiny_model"),
    "hs_run_offline": ("HS_RUN_OFFLINE_BIN", ROOT / "build/tools/hs_run_offline"),
}
_paths = {}


def binary(name):
    """Path of one of BINARIES (a test fails with a clear message if it is missing)."""
    if name not in _paths:
        env, default = BINARIES[name]
        _paths[name] = os.environ.get(env) or str(default)
    path = _paths[name]
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{name} not found at {path} (build it, or pass --{name})")
    return path


def _generate_stubs():
    out = _WORK / "stubs"
    out.mkdir()
    grpc_tools_include = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{grpc_tools_include}", f"--python_out={out}",
            f"--grpc_python_out={out}", str(PROTO_DIR / "hybridserve/v1/inference.proto")]
    if protoc.main(args) != 0:
        raise RuntimeError(f"grpc_tools.protoc failed on {PROTO_DIR}")
    sys.path.insert(0, str(out))


_generate_stubs()
from hybridserve.v1 import inference_pb2 as pb  # noqa: E402
from hybridserve.v1 import inference_pb2_grpc as pb_grpc  # noqa: E402

# Generous: the suite also runs against sanitizer builds on a busy 2-core machine.
RPC_TIMEOUT_S = 300
READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 300


# ---------------------------------------------------------------------------
# Models.

def make_tiny_model(name="tiny", *extra):
    """Writes a tiny Llama (byte-level tokenizer: ids 0-255 bytes, 256 BOS, 257 EOS)
    into a fresh folder named `name` and returns its path."""
    out = _WORK / "models" / name
    if out.exists():
        return out
    out.parent.mkdir(exist_ok=True)
    cmd = [binary("hs_make_tiny_model"), "--preset", "tiny", "--out", str(out), *extra]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                           f"{proc.stdout.decode(errors='replace')}")
    return out


# ---------------------------------------------------------------------------
# Server process.

_servers = []


class Server:
    """The real hybridserve binary on a free loopback port (--port 0 --ready-file)."""

    def __init__(self, model_dir, *extra_args, name=None):
        self.model_dir = Path(model_dir)
        self.name = name or self.model_dir.name
        self.extra_args = list(extra_args)
        self.dir = Path(tempfile.mkdtemp(prefix=f"server_{self.name}_", dir=_WORK))
        self.ready_file = self.dir / "ready"
        self.log_path = self.dir / "stderr.log"
        self.proc = None
        self.port = None
        self._channel = None
        _servers.append(self)

    def start(self):
        cmd = [binary("hybridserve"), "--model", str(self.model_dir), "--host", "127.0.0.1",
               "--port", "0", "--ready-file", str(self.ready_file),
               "--served-model-name", self.name, "--threads", "1",
               "--kv-cache-bytes", str(32 << 20), *self.extra_args]
        self.cmd = cmd
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode} before it was "
                                     f"ready\n  command: {' '.join(cmd)}\n{self.log_tail()}")
            try:
                text = self.ready_file.read_text().strip()
                if text:
                    # First line: the gRPC port; second: the metrics port.
                    self.port = int(text.split()[0])
                    break
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.02)
        else:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"server not ready after {READY_TIMEOUT_S} s\n"
                                 f"  command: {' '.join(cmd)}\n{self.log_tail()}")
        return self

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def channel(self):
        """A channel shared by the tests of one server."""
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address)
        return self._channel

    def stub(self):
        return pb_grpc.InferenceStub(self.channel())

    def log_tail(self, lines=40):
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "  (no server output)"
        return f"  server output (last {lines} lines of {len(text)}):\n" + "\n".join(
            "    | " + l for l in text[-lines:])

    def terminate(self):
        """Sends SIGTERM (the drain starts); returns at once."""
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout=STOP_TIMEOUT_S):
        """Waits for the process to exit; returns its exit code (kills it on timeout)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"server did not exit within {timeout} s of SIGTERM\n"
                                 f"{self.log_tail()}")

    def stop(self):
        """SIGTERM, then asserts the exit code is 0."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
        else:
            self.terminate()
            code = self.wait()
        if code != 0:
            raise AssertionError(f"server exit code {code} after SIGTERM, want 0\n"
                                 f"{self.log_tail()}")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _kill_all():
    for s in _servers:
        s.kill()


atexit.register(_kill_all)


# ---------------------------------------------------------------------------
# Requests.

def request(ids=None, text=None, *, max_new_tokens=8, temperature=0.0, ignore_eos=True,
            model="", **fields):
    """A GenerateRequest; `fields` may hold sampling / stopping field names or
    top-level ones (logprobs, priority, stop, ...)."""
    sampling_names = {f.name for f in pb.SamplingParams.DESCRIPTOR.fields}
    stopping_names = {f.name for f in pb.StoppingCriteria.DESCRIPTOR.fields}
    req = pb.GenerateRequest(model=model)
    if ids is not None:
        req.token_ids.SetInParent()  # selects the oneof even when ids is empty
        req.token_ids.ids.extend(ids)
    if text is not None:
        req.text = text
    if temperature is not None:
        req.sampling.temperature = temperature
    if max_new_tokens is not None:
        req.stopping.max_new_tokens = max_new_tokens
    req.stopping.ignore_eos = ignore_eos
    for k, v in fields.items():
        if k in sampling_names:
            target = req.sampling
        elif k in stopping_names:
            target = req.stopping
        else:
            target = req
        if isinstance(v, (list, tuple)):
            getattr(target, k).extend(v)
        else:
            setattr(target, k, v)
    return req


class Result:
    """A finished Generate stream, put together."""

    def __init__(self, responses):
        self.responses = responses
        self.token_ids = [t for r in responses for t in r.token_ids]
        self.text = "".join(r.text for r in responses)
        self.logprobs = [lp for r in responses for lp in r.logprobs]
        last = responses[-1] if responses else pb.GenerateResponse()
        self.finish_reason = last.finish_reason
        self.usage = last.usage
        self.prompt_token_ids = list(responses[0].prompt_token_ids) if responses else []

    def __repr__(self):
        return (f"Result(tokens={self.token_ids}, text={self.text!r}, "
                f"finish={pb.FinishReason.Name(self.finish_reason)})")


def generate(stub, req, timeout=RPC_TIMEOUT_S):
    """Runs one Generate call to the end; raises grpc.RpcError on a non-OK status."""
    return Result(list(stub.Generate(req, timeout=timeout)))


def get_model(stub, name=""):
    return stub.GetModel(pb.GetModelRequest(model=name), timeout=RPC_TIMEOUT_S)


def wait_blocks_free(test, stub, timeout_s=30.0, what=""):
    """Polls GetModel until every KV block is free and nothing runs; fails `test` if not."""
    deadline = time.monotonic() + timeout_s
    while True:
        load = get_model(stub).load
        if (load.free_kv_blocks == load.total_kv_blocks and load.running_requests == 0
                and load.waiting_requests == 0):
            return load
        if time.monotonic() > deadline:
            test.fail(f"{what}: after {timeout_s} s, free_kv_blocks {load.free_kv_blocks} / "
                      f"total {load.total_kv_blocks}, running {load.running_requests}, "
                      f"waiting {load.waiting_requests}")
        time.sleep(0.05)


def finish_name(reason):
    return pb.FinishReason.Name(reason)


class Barrier:
    """Counts events and lets a thread wait for a number of them."""

    def __init__(self):
        self._cv = threading.Condition()
        self._n = 0

    def signal(self):
        with self._cv:
            self._n += 1
            self._cv.notify_all()

    def wait_for(self, n, timeout):
        with self._cv:
            return self._cv.wait_for(lambda: self._n >= n, timeout=timeout)


# ---------------------------------------------------------------------------
# Entry point of each test script.

def main():
    parser = argparse.ArgumentParser(add_help=False)
    for name, (env, _) in BINARIES.items():
        parser.add_argument(f"--{name}", dest=env)
    args, rest = parser.parse_known_args()
    for env, value in vars(args).items():
        if value:
            os.environ[env] = value
    start = time.monotonic()
    program = unittest.main(module="__main__", argv=[sys.argv[0], "-v", *rest], exit=False)
    result = program.result
    if not result.wasSuccessful():
        for s in _servers:
            print(f"\n--- server {s.name} ({' '.join(getattr(s, 'cmd', []))})\n{s.log_tail(60)}",
                  file=sys.stderr)
    # Subtests fail one by one; count each test once.
    failed = {getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors}
    skipped = {getattr(t, "test_case", t).id() for t, _ in result.skipped}
    print(f"{result.testsRun - len(failed) - len(skipped)} passed, {len(failed)} failed, "
          f"{len(skipped)} skipped in {time.monotonic() - start:.1f} s")
    _kill_all()
    sys.exit(0 if result.wasSuccessful() else 1)
