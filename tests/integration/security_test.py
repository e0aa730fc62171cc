#!/usr/bin/env python3
"""Security (DESIGN.md sections 5-6, docs/deploy.md): API keys, TLS, mutual TLS
and the plaintext health port, against the real server.

* API keys: every Inference RPC without a key, with a malformed header or a
  wrong key gets UNAUTHENTICATED; with a valid key it is served; health and
  reflection need no key; SIGHUP reloads the file (a key added, one removed; a
  bad file keeps the keys in use); per-key counters in /metrics equal what the
  clients received; no key and no prompt text appears in the server's output.
* TLS: a plaintext client cannot reach Generate, a client trusting the CA can;
  the plaintext --health-port answers SERVING (and NOT_SERVING while draining)
  and serves nothing but health.
* Mutual TLS: a client without a certificate, or with one another CA signed, is
  refused; one with a certificate the client CA signed is served.
* Bad security flags stop the server before it loads the model, naming the flag.

The CA and certificates are made at test time with the openssl command.
"""
import os
import re
import subprocess
import threading
import time
import unittest
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase)

import harness
from harness import pb

SERVICE = "hybridserve.v1.Inference"
KEYS = {
    "alice": "alice-7Hq2v9LmN4xR8sKp",
    "bob": "bob-Zt5Wc1Jy6Ue3Gd0Fh",
    "carol": "carol-Pn8Bk2Xs7Qm4Lv9R",
    "metered": "metered-Vf3Hn6Ty1Cw8Jr5D",
}
WRONG_KEY = "wrong-Mz4Rq7Ks2Xn9Bt6W"
PROMPT_MARKER = "quokka-sunrise-prompt-marker"
SHORT_TIMEOUT_S = 120  # generous: sanitizer builds on a busy 2-core machine

work = None
certs = None
keys_server = None
keys_file = None
tls_server = None
mtls_server = None


# ---------------------------------------------------------------------------
# Certificates.

def openssl(*args, cwd):
    proc = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} exited {proc.returncode}:\n"
                           f"{proc.stdout.decode(errors='replace')}")


def make_ca(folder, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
            "-subj", f"/CN=hybridserve test {name}", cwd=folder)


def make_cert(folder, name, ca, usage, san=None):
    """A key and a certificate `ca` signed (extendedKeyUsage `usage`)."""
    ext = Path(folder) / f"{name}.ext"
    lines = ["basicConstraints=CA:FALSE", "keyUsage=digitalSignature,keyEncipherment",
             f"extendedKeyUsage={usage}"]
    if san:
        lines.append(f"subjectAltName={san}")
    ext.write_text("\n".join(lines) + "\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=folder)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-set_serial", str(abs(hash(name)) % 100000 + 1), "-days", "2",
            "-extfile", str(ext), "-out", f"{name}.pem", cwd=folder)


class Certs:
    def __init__(self, folder):
        folder.mkdir()
        make_ca(folder, "ca")
        make_ca(folder, "other_ca")
        make_cert(folder, "server", "ca", "serverAuth", "IP:127.0.0.1,DNS:localhost")
        make_cert(folder, "client", "ca", "clientAuth")
        make_cert(folder, "rogue_client", "other_ca", "clientAuth")
        self.folder = folder

    def path(self, name):
        return str(self.folder / name)

    def read(self, name):
        return (self.folder / name).read_bytes()


# ---------------------------------------------------------------------------
# Helpers.

def ready_lines(server):
    return server.ready_file.read_text().split()


def write_keys(path, names, extra=""):
    text = "# name key\n" + "".join(f"{n} {KEYS[n]}\n" for n in names) + extra
    Path(path).write_text(text)


def auth(key):
    return (("authorization", f"Bearer {key}"),)


def all_rpcs(stub, metadata):
    """Each Inference RPC once with `metadata`: {name: callable}."""
    return {
        "Generate": lambda: list(stub.Generate(harness.request([256, 72, 105], max_new_tokens=2),
                                               metadata=metadata, timeout=SHORT_TIMEOUT_S)),
        "Tokenize": lambda: stub.Tokenize(pb.TokenizeRequest(text=PROMPT_MARKER),
                                          metadata=metadata, timeout=SHORT_TIMEOUT_S),
        "Detokenize": lambda: stub.Detokenize(pb.DetokenizeRequest(token_ids=[72, 105]),
                                              metadata=metadata, timeout=SHORT_TIMEOUT_S),
        "ListModels": lambda: stub.ListModels(pb.ListModelsRequest(), metadata=metadata,
                                              timeout=SHORT_TIMEOUT_S),
        "GetModel": lambda: stub.GetModel(pb.GetModelRequest(), metadata=metadata,
                                          timeout=SHORT_TIMEOUT_S),
    }


def health_status(channel, service=""):
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=SHORT_TIMEOUT_S)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def log_count(server, text):
    return server.log_path.read_text(errors="replace").count(text)


def wait_log_count(test, server, text, count, timeout_s=SHORT_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while log_count(server, text) < count:
        test.assertLess(time.monotonic(), deadline, f"no {text!r} #{count} in the log\n"
                        f"{server.log_tail()}")
        time.sleep(0.02)


def tls_channel(server, client=None):
    creds = grpc.ssl_channel_credentials(
        root_certificates=certs.read("ca.pem"),
        private_key=certs.read(f"{client}.key") if client else None,
        certificate_chain=certs.read(f"{client}.pem") if client else None)
    return grpc.secure_channel(server.address, creds)


# ---------------------------------------------------------------------------
# Servers.

def setUpModule():
    global work, certs, keys_server, keys_file, tls_server, mtls_server
    model = harness.make_tiny_model("tiny")
    work = Path(harness._WORK) / "security"
    work.mkdir(exist_ok=True)
    certs = Certs(work / "certs")
    keys_file = work / "keys.txt"
    write_keys(keys_file, ["alice", "bob", "metered"])
    keys_server = harness.Server(model, "--api-keys-file", str(keys_file), "--metrics-port", "0",
                                 name="keys").start()
    tls_server = harness.Server(harness.make_tiny_model("tiny_mamba2", "--architecture", "mamba2"),
                                "--tls-cert", certs.path("server.pem"),
                                "--tls-key", certs.path("server.key"),
                                "--health-port", "0", "--metrics-port", "-1",
                                "--outbox-events", "100000", name="tls").start()
    mtls_server = harness.Server(model, "--tls-cert", certs.path("server.pem"),
                                 "--tls-key", certs.path("server.key"),
                                 "--tls-client-ca", certs.path("ca.pem"),
                                 "--metrics-port", "-1", name="mtls").start()


def tearDownModule():
    for s in (keys_server, tls_server, mtls_server):
        if s is not None:
            s.stop()
    # Keys and prompt text never reach the server's output at the default level.
    secrets = list(KEYS.values()) + [WRONG_KEY, PROMPT_MARKER]
    for s in (keys_server, tls_server, mtls_server):
        if s is None:
            continue
        text = s.log_path.read_text(errors="replace")
        for secret in secrets:
            if secret in text:
                raise AssertionError(f"server {s.name}: {secret!r} is in its output")


# ---------------------------------------------------------------------------
# Tests.

class ApiKeysTest(unittest.TestCase):
    def test_every_rpc_needs_a_valid_key(self):
        stub = keys_server.stub()
        refused = {
            "no key": (),
            "wrong key": auth(WRONG_KEY),
            "not bearer": (("authorization", f"Basic {KEYS['alice']}"),),
            "name instead of key": auth("alice"),
            "key with a character more": auth(KEYS["alice"] + "x"),
        }
        for case, metadata in refused.items():
            for rpc, call in all_rpcs(stub, metadata).items():
                with self.subTest(case=case, rpc=rpc):
                    with self.assertRaises(grpc.RpcError) as e:
                        call()
                    self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
                    self.assertEqual(e.exception.details(), "missing or invalid API key")
        for rpc, call in all_rpcs(stub, auth(KEYS["alice"])).items():
            with self.subTest(case="valid key", rpc=rpc):
                call()  # raises on a non-OK status
        generated = harness.Result(list(stub.Generate(
            harness.request([256, 72, 105], max_new_tokens=4), metadata=auth(KEYS["alice"]),
            timeout=SHORT_TIMEOUT_S)))
        self.assertEqual(len(generated.token_ids), 4)

    def test_health_and_reflection_need_no_key(self):
        channel = keys_server.channel()
        self.assertEqual(health_status(channel), "SERVING")
        self.assertEqual(health_status(channel, SERVICE), "SERVING")
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        self.assertIn(SERVICE, services)

    def test_sighup_reload_adds_and_removes_keys(self):
        stub = keys_server.stub()
        tokenize = lambda key: stub.Tokenize(pb.TokenizeRequest(text="hi"), metadata=auth(key),
                                             timeout=SHORT_TIMEOUT_S)
        tokenize(KEYS["bob"])
        with self.assertRaises(grpc.RpcError) as e:
            tokenize(KEYS["carol"])
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        reloads = log_count(keys_server, "SIGHUP: API keys reloaded")
        kept = log_count(keys_server, "SIGHUP: keeping the API keys in use")
        try:
            # Bob out, carol in.
            write_keys(keys_file, ["alice", "carol", "metered"])
            keys_server.proc.send_signal(harness.signal.SIGHUP)
            wait_log_count(self, keys_server, "SIGHUP: API keys reloaded", reloads + 1)
            tokenize(KEYS["carol"])
            tokenize(KEYS["alice"])
            with self.assertRaises(grpc.RpcError) as e:
                tokenize(KEYS["bob"])
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            # An invalid file (a short key, a duplicate name): the keys stay.
            write_keys(keys_file, ["alice"], extra=f"mallory short\nalice {KEYS['bob']}\n")
            keys_server.proc.send_signal(harness.signal.SIGHUP)
            wait_log_count(self, keys_server, "SIGHUP: keeping the API keys in use", kept + 1)
            self.assertIn("keys.txt:3: the key is 5 characters", keys_server.log_path.read_text())
            tokenize(KEYS["carol"])
            with self.assertRaises(grpc.RpcError):
                tokenize(KEYS["bob"])
            # A missing file: the keys stay too.
            keys_file.unlink()
            keys_server.proc.send_signal(harness.signal.SIGHUP)
            wait_log_count(self, keys_server, "SIGHUP: keeping the API keys in use", kept + 2)
            tokenize(KEYS["carol"])
        finally:
            write_keys(keys_file, ["alice", "bob", "metered"])
            keys_server.proc.send_signal(harness.signal.SIGHUP)
            wait_log_count(self, keys_server, "SIGHUP: API keys reloaded", reloads + 2)
        tokenize(KEYS["bob"])

    def test_per_key_counters_equal_what_clients_received(self):
        stub = keys_server.stub()
        metrics_port = int(ready_lines(keys_server)[1])
        md = auth(KEYS["metered"])

        def scrape():
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                        timeout=SHORT_TIMEOUT_S) as r:
                return r.read().decode()

        def value(text, name, **labels):
            found = []
            for line in text.splitlines():
                m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}\s+(\S+)$', line)
                if not m or m.group(1) != name:
                    continue
                got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
                if all(got.get(k) == v for k, v in labels.items()):
                    self.assertEqual(got.get("model"), "keys", line)
                    self.assertIn("architecture", got, line)
                    found.append(float(m.group(3)))
            self.assertEqual(len(found), 1, f"{name}{labels}: {found}")
            return found[0]

        before = scrape()
        refused_before = value(before, "hybridserve_unauthenticated_requests_total")
        # The series of a key exist (at zero) before its first request.
        self.assertEqual(value(before, "hybridserve_tokens_by_key_total",
                               key_name="metered", kind="prompt"), 0)
        self.assertEqual(value(before, "hybridserve_requests_by_key_total",
                               key_name="metered", rpc="Generate"), 0)
        prompt, generated, calls = 0, 0, {"Generate": 0, "Tokenize": 0, "GetModel": 0}
        for i in range(4):
            r = harness.Result(list(stub.Generate(
                harness.request([256] + list(range(60, 64 + i)), max_new_tokens=3 + i),
                metadata=md, timeout=SHORT_TIMEOUT_S)))
            prompt += r.usage.prompt_tokens
            generated += len(r.token_ids)
            self.assertEqual(r.usage.completion_tokens, len(r.token_ids))
            calls["Generate"] += 1
        r = harness.Result(list(stub.Generate(harness.request(text=PROMPT_MARKER, max_new_tokens=2),
                                              metadata=md, timeout=SHORT_TIMEOUT_S)))
        prompt += r.usage.prompt_tokens
        generated += len(r.token_ids)
        calls["Generate"] += 1
        # A request refused after authentication counts as a request, with no tokens.
        with self.assertRaises(grpc.RpcError) as e:
            list(stub.Generate(harness.request([256, 1], max_new_tokens=0), metadata=md,
                               timeout=SHORT_TIMEOUT_S))
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        calls["Generate"] += 1
        for _ in range(3):
            stub.Tokenize(pb.TokenizeRequest(text="abc"), metadata=md, timeout=SHORT_TIMEOUT_S)
            calls["Tokenize"] += 1
        stub.GetModel(pb.GetModelRequest(), metadata=md, timeout=SHORT_TIMEOUT_S)
        calls["GetModel"] += 1
        for _ in range(3):
            with self.assertRaises(grpc.RpcError):
                stub.ListModels(pb.ListModelsRequest(), metadata=auth(WRONG_KEY),
                                timeout=SHORT_TIMEOUT_S)

        after = scrape()
        self.assertGreater(prompt, 0)
        self.assertEqual(value(after, "hybridserve_tokens_by_key_total", key_name="metered",
                               kind="prompt"), prompt)
        self.assertEqual(value(after, "hybridserve_tokens_by_key_total", key_name="metered",
                               kind="generation"), generated)
        for rpc, n in calls.items():
            self.assertEqual(value(after, "hybridserve_requests_by_key_total", key_name="metered",
                                   rpc=rpc), n, rpc)
        self.assertEqual(value(after, "hybridserve_unauthenticated_requests_total"),
                         refused_before + 3)


class TlsTest(unittest.TestCase):
    def test_plaintext_client_cannot_reach_generate(self):
        with grpc.insecure_channel(tls_server.address) as channel:
            stub = pb_stub(channel)
            with self.assertRaises(grpc.RpcError) as e:
                list(stub.Generate(harness.request([256, 72], max_new_tokens=2),
                                   timeout=SHORT_TIMEOUT_S))
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_client_trusting_the_ca_is_served(self):
        with tls_channel(tls_server) as channel:
            r = harness.generate(pb_stub(channel), harness.request([256, 72, 105],
                                                                   max_new_tokens=3))
            self.assertEqual(len(r.token_ids), 3)
            self.assertEqual(health_status(channel), "SERVING")

    def test_client_not_trusting_the_ca_is_refused(self):
        creds = grpc.ssl_channel_credentials(root_certificates=certs.read("other_ca.pem"))
        with grpc.secure_channel(tls_server.address, creds) as channel:
            with self.assertRaises(grpc.RpcError) as e:
                pb_stub(channel).ListModels(pb.ListModelsRequest(), timeout=SHORT_TIMEOUT_S)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_plaintext_health_port_serves_health_only(self):
        lines = ready_lines(tls_server)
        self.assertEqual(len(lines), 3, lines)
        health = f"127.0.0.1:{lines[2]}"
        with grpc.insecure_channel(health) as channel:
            self.assertEqual(health_status(channel), "SERVING")
            self.assertEqual(health_status(channel, SERVICE), "SERVING")
            with self.assertRaises(grpc.RpcError) as e:
                pb_stub(channel).ListModels(pb.ListModelsRequest(), timeout=SHORT_TIMEOUT_S)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
            with self.assertRaises(Exception):  # no reflection service there
                ProtoReflectionDescriptorDatabase(channel).get_services()

    def test_z_health_port_not_serving_while_draining(self):
        # Runs last in this class: the server drains and exits. A long stream
        # (a pure SSM model has no context limit) keeps the drain open until
        # the client cancels it.
        health = f"127.0.0.1:{ready_lines(tls_server)[2]}"
        with tls_channel(tls_server) as channel, grpc.insecure_channel(health) as hc:
            call = pb_stub(channel).Generate(harness.request([256, 72], max_new_tokens=30000),
                                             timeout=harness.RPC_TIMEOUT_S)
            next(call)
            drained = threading.Thread(target=lambda: [None for _ in call], daemon=True)
            drained.start()
            self.assertEqual(health_status(hc), "SERVING")
            tls_server.terminate()
            deadline = time.monotonic() + SHORT_TIMEOUT_S
            while health_status(hc) != "NOT_SERVING":
                self.assertLess(time.monotonic(), deadline, "health port still SERVING")
                self.assertTrue(drained.is_alive(), "the stream ended before the drain was seen")
                time.sleep(0.01)
            self.assertEqual(health_status(hc, SERVICE), "NOT_SERVING")
            call.cancel()
            drained.join(SHORT_TIMEOUT_S)
        self.assertEqual(tls_server.wait(), 0)


class MutualTlsTest(unittest.TestCase):
    def test_client_without_certificate_is_refused(self):
        with tls_channel(mtls_server) as channel:
            with self.assertRaises(grpc.RpcError) as e:
                pb_stub(channel).ListModels(pb.ListModelsRequest(), timeout=SHORT_TIMEOUT_S)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_client_certificate_of_another_ca_is_refused(self):
        with tls_channel(mtls_server, "rogue_client") as channel:
            with self.assertRaises(grpc.RpcError) as e:
                pb_stub(channel).ListModels(pb.ListModelsRequest(), timeout=SHORT_TIMEOUT_S)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_client_with_certificate_is_served(self):
        with tls_channel(mtls_server, "client") as channel:
            r = harness.generate(pb_stub(channel), harness.request([256, 72, 105],
                                                                   max_new_tokens=3))
            self.assertEqual(len(r.token_ids), 3)


class HsClientTest(unittest.TestCase):
    """The command-line client speaks TLS (with a client certificate) and sends
    the API key from a file or $HS_API_KEY, never echoing it."""

    def run_client(self, *args, env_key=None):
        env = {k: v for k, v in os.environ.items() if k != "HS_API_KEY"}
        if env_key is not None:
            env["HS_API_KEY"] = env_key
        proc = subprocess.run([harness.binary("hs_client"), *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env,
                              timeout=SHORT_TIMEOUT_S)
        for secret in KEYS.values():
            self.assertNotIn(secret, proc.stdout + proc.stderr)
        return proc

    def test_api_key_from_file_or_environment(self):
        server = f"--server={keys_server.address}"
        missing = self.run_client(server, "models")
        self.assertEqual(missing.returncode, 1, missing.stderr)
        self.assertIn("UNAUTHENTICATED", missing.stderr)
        from_env = self.run_client(server, "models", env_key=KEYS["alice"])
        self.assertEqual(from_env.returncode, 0, from_env.stderr)
        key_file = work / "client_key.txt"
        key_file.write_text(KEYS["bob"] + "\n")
        from_file = self.run_client(server, f"--api_key_file={key_file}", "generate",
                                    "--prompt_ids=256,72,105", "--max_new_tokens=3", "--json")
        self.assertEqual(from_file.returncode, 0, from_file.stderr)
        self.assertIn('"summary"', from_file.stdout)

    def test_mutual_tls(self):
        server = f"--server={mtls_server.address}"
        tls = [f"--tls_ca={certs.path('ca.pem')}", f"--tls_cert={certs.path('client.pem')}",
               f"--tls_key={certs.path('client.key')}"]
        ok = self.run_client(server, *tls, "generate", "--prompt_ids=256,72,105",
                             "--max_new_tokens=3")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        no_cert = self.run_client(server, tls[0], "models")
        self.assertEqual(no_cert.returncode, 1, no_cert.stderr)
        usage = self.run_client(server, tls[1], tls[2], "models")
        self.assertEqual(usage.returncode, 2, usage.stderr)
        self.assertIn("--tls_cert and --tls_key need --tls_ca", usage.stderr)


class BadFlagsTest(unittest.TestCase):
    """Each bad security flag stops the server at start-up with a message naming it."""

    def run_server(self, *args):
        cmd = [harness.binary("hybridserve"), "--model", str(harness.make_tiny_model("tiny")),
               "--port", "0", "--metrics-port", "-1", *args]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=harness.READY_TIMEOUT_S, text=True)
        return proc.returncode, proc.stdout

    def test_bad_flags(self):
        bad_keys = work / "bad_keys.txt"
        bad_keys.write_text(f"alice {KEYS['alice']}\nbob short\n")
        cases = {
            "cert without key": (["--tls-cert", certs.path("server.pem")], "--tls-key"),
            "key without cert": (["--tls-key", certs.path("server.key")], "--tls-cert"),
            "client CA without TLS": (["--tls-client-ca", certs.path("ca.pem")],
                                      "--tls-client-ca"),
            "unreadable cert": (["--tls-cert", str(work / "nope.pem"),
                                 "--tls-key", certs.path("server.key")], "--tls-cert"),
            "key of another cert": (["--tls-cert", certs.path("server.pem"),
                                     "--tls-key", certs.path("client.key")], "--tls-key"),
            "cert file not PEM": (["--tls-cert", str(bad_keys),
                                   "--tls-key", certs.path("server.key")], "--tls-cert"),
            "client CA not PEM": (["--tls-cert", certs.path("server.pem"),
                                   "--tls-key", certs.path("server.key"),
                                   "--tls-client-ca", str(bad_keys)], "--tls-client-ca"),
            "health port out of range": (["--health-port", "70000"], "--health-port"),
            "missing keys file": (["--api-keys-file", str(work / "nope.txt")],
                                  "--api-keys-file"),
            "invalid keys file": (["--api-keys-file", str(bad_keys)], "--api-keys-file: "),
        }
        for case, (args, want) in cases.items():
            with self.subTest(case):
                code, out = self.run_server(*args)
                self.assertNotEqual(code, 0, out)
                self.assertIn(want, out)
                self.assertNotIn("warm-up", out, "the model was loaded before the check")
                self.assertNotIn(KEYS["alice"], out)

    def test_help_lists_the_security_flags(self):
        code, out = self.run_server("--help")
        self.assertEqual(code, 0)
        for flag in ("--tls-cert", "--tls-key", "--tls-client-ca", "--health-port",
                     "--api-keys-file"):
            self.assertIn(flag, out)


def pb_stub(channel):
    return harness.pb_grpc.InferenceStub(channel)


if __name__ == "__main__":
    harness.main()
