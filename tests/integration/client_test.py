#!/usr/bin/env python3
"""The project's command-line client (hs_client) against the real server: its
streamed --json output equals what a Python grpcio client gets; tokenize,
detokenize and models work; errors give a non-zero exit and the status."""
import json
import subprocess
import unittest

import harness
from harness import pb

server = None


def setUpModule():
    global server
    server = harness.Server(harness.make_tiny_model("tiny"), name="tiny").start()


def tearDownModule():
    server.stop()


def hs_client(*args, check=True, timeout=harness.RPC_TIMEOUT_S):
    cmd = [harness.binary("hs_client"), "--server", server.address, *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out, err = proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8", errors="replace")
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstderr: {err}")
    return proc.returncode, out, err


def json_lines(out):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class ClientTest(unittest.TestCase):
    def test_generate_json_streams_same_tokens_as_python_client(self):
        prompt = [256, 72, 101, 108, 108, 111]
        n = 12
        want = harness.generate(server.stub(), harness.request(prompt, max_new_tokens=n))
        self.assertEqual(len(want.token_ids), n, want)
        _, out, _ = hs_client("generate", "--json", "--prompt_ids", ",".join(map(str, prompt)),
                              "--temperature", "0", "--max_new_tokens", str(n), "--ignore_eos")
        objs = json_lines(out)
        responses = [o for o in objs if "summary" not in o]
        summaries = [o["summary"] for o in objs if "summary" in o]
        self.assertEqual(len(summaries), 1, out)
        self.assertIs(objs[-1].get("summary") is not None, True, "summary must be last")
        # Streamed: several responses, not one at the end.
        self.assertGreater(len(responses), 1, out)
        got = [t for r in responses for t in r.get("token_ids", [])]
        self.assertEqual(got, want.token_ids)
        self.assertEqual(summaries[0].get("token_ids", []), want.token_ids)
        self.assertEqual(summaries[0].get("text", ""), want.text)
        self.assertEqual(responses[-1].get("finish_reason"), "FINISH_REASON_LENGTH")
        self.assertEqual(summaries[0].get("finish_reason"), "FINISH_REASON_LENGTH")
        usage = summaries[0].get("usage", {})
        self.assertEqual(usage.get("completion_tokens"), n, summaries[0])
        self.assertEqual(usage.get("prompt_tokens"), len(prompt), summaries[0])
        self.assertEqual(responses[0].get("prompt_token_ids"), prompt)

    def test_generate_text_streams_to_stdout(self):
        req = harness.request(text="Hello", max_new_tokens=10)
        want = harness.generate(server.stub(), req)
        _, out, err = hs_client("generate", "--prompt", "Hello", "--temperature", "0",
                                "--max_new_tokens", "10", "--ignore_eos")
        self.assertEqual(out, want.text + ("\n" if want.text else ""))
        self.assertIn("finish: length", err)
        self.assertIn("completion 10 tokens", err)

    def test_generate_sampling_flags_reach_the_server(self):
        prompt = [256, 10, 20, 30]
        req = harness.request(prompt, max_new_tokens=10, temperature=0.8, top_k=40, top_p=0.9,
                              min_p=0.01, seed=77, repetition_penalty=1.1,
                              presence_penalty=0.2, frequency_penalty=0.1, logprobs=2)
        want = harness.generate(server.stub(), req)
        _, out, _ = hs_client("generate", "--json", "--prompt_ids", ",".join(map(str, prompt)),
                              "--max_new_tokens", "10", "--ignore_eos", "--temperature", "0.8",
                              "--top_k", "40", "--top_p", "0.9", "--min_p", "0.01",
                              "--seed", "77", "--repetition_penalty", "1.1",
                              "--presence_penalty", "0.2", "--frequency_penalty", "0.1",
                              "--logprobs", "2")
        summary = json_lines(out)[-1]["summary"]
        self.assertEqual(summary.get("token_ids"), want.token_ids)
        logprobs = summary.get("logprobs", [])
        self.assertEqual(len(logprobs), 10)
        self.assertTrue(all(len(lp.get("top", [])) == 2 for lp in logprobs), logprobs)
        self.assertEqual([lp["token_id"] for lp in logprobs], want.token_ids)

    def test_generate_repeated_stop_flags(self):
        # A stop token id the greedy output contains ends the stream there.
        prompt = [256, 65, 66, 67]
        full = harness.generate(server.stub(), harness.request(prompt, max_new_tokens=8))
        stop_id = full.token_ids[3]
        k = full.token_ids.index(stop_id)
        _, out, _ = hs_client("generate", "--json", "--prompt_ids", "256,65,66,67",
                              "--temperature", "0", "--max_new_tokens", "8", "--ignore_eos",
                              "--stop_token_ids", str(stop_id), "--stop=\\x01\\x02,zz",
                              "--stop", "never seen")
        summary = json_lines(out)[-1]["summary"]
        self.assertEqual(summary.get("token_ids"), full.token_ids[:k + 1])
        self.assertEqual(summary.get("finish_reason"), "FINISH_REASON_STOP")

    def test_tokenize_and_detokenize(self):
        stub = server.stub()
        want = stub.Tokenize(pb.TokenizeRequest(text="Hi there"), timeout=harness.RPC_TIMEOUT_S).token_ids
        self.assertEqual(list(want[:1]), [256])  # BOS added by default
        _, out, _ = hs_client("tokenize", "--prompt", "Hi there")
        self.assertEqual(out.strip(), ",".join(map(str, want)))
        _, out, _ = hs_client("tokenize", "--json", "Hi", "there")
        self.assertEqual(json.loads(out)["token_ids"], list(want))
        _, out, _ = hs_client("tokenize", "--add_special_tokens=false", "--prompt", "Hi there")
        self.assertEqual(out.strip(), ",".join(map(str, want[1:])))
        _, out, _ = hs_client("detokenize", "--ids", ",".join(map(str, want)))
        self.assertEqual(out, "Hi there\n")
        _, out, _ = hs_client("detokenize", "--json", "--skip_special_tokens=false",
                              *map(str, want))
        self.assertEqual(json.loads(out)["text"], "<|begin_of_text|>Hi there")

    def test_models(self):
        _, out, _ = hs_client("models", "--json")
        models = json.loads(out)["models"]
        self.assertEqual([m["name"] for m in models], ["tiny"])
        m = models[0]
        self.assertEqual(m["architecture"], "LlamaForCausalLM")
        self.assertEqual(m["vocab_size"], 512)
        self.assertGreater(int(m["load"]["total_kv_blocks"]), 0)
        _, out, _ = hs_client("models", "--json", "--model", "tiny")
        self.assertEqual(json.loads(out)["name"], "tiny")
        _, out, _ = hs_client("models")
        self.assertIn("tiny", out)
        self.assertIn("LlamaForCausalLM", out)

    def test_errors_exit_nonzero_with_status(self):
        code, _, err = hs_client("generate", "--prompt_ids", "256,1", "--temperature=-1",
                                 check=False)
        self.assertEqual(code, 1)
        self.assertIn("INVALID_ARGUMENT", err)
        self.assertIn("temperature", err)
        code, _, err = hs_client("models", "--model", "no-such-model", check=False)
        self.assertEqual(code, 1)
        self.assertIn("NOT_FOUND", err)
        code, _, err = hs_client("generate", check=False)  # no prompt
        self.assertEqual(code, 2)
        code, _, err = hs_client("frobnicate", check=False)
        self.assertEqual(code, 2)
        self.assertIn("unknown subcommand", err)

    def test_deadline_flag(self):
        code, _, err = hs_client("generate", "--prompt_ids", "256,1", "--temperature", "0",
                                 "--ignore_eos", "--max_new_tokens", "2000", "--timeout", "0.2",
                                 check=False)
        self.assertEqual(code, 1, err)
        self.assertIn("DEADLINE_EXCEEDED", err)

    def test_help_lists_subcommands_and_flags(self):
        proc = subprocess.run([harness.binary("hs_client"), "--help"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=30)
        text = proc.stdout.decode()
        for word in ("generate", "tokenize", "detokenize", "models", "--server", "--json",
                     "--temperature", "--top_p", "--seed", "--stop", "--max_new_tokens",
                     "--logprobs", "--timeout", "--prompt_ids", "--ignore_eos", "--priority"):
            self.assertIn(word, text)


if __name__ == "__main__":
    harness.main()
