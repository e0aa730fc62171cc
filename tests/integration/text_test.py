#!/usr/bin/env python3
"""Text on the wire: the streamed text equals Detokenize of the generated ids,
every response's text is valid UTF-8 (random weights emit bytes that are not),
and stop strings end the stream just before the matched text.

Two tiny models: the preset (vocab 512; ids 266-511 have no text) and one with
vocab 266, where every id has text, so outputs hold plenty of it."""
import unittest

import grpc
from google.protobuf.message import DecodeError

import harness
from harness import pb

servers = {}

PROMPTS = ["Hello, world", "The quick brown fox", "héllo wörld, 你好 😀", " a", "x" * 40]


def setUpModule():
    servers["vocab512"] = harness.Server(harness.make_tiny_model("tiny")).start()
    servers["vocab266"] = harness.Server(
        harness.make_tiny_model("tiny_text", "--vocab_size", "266")).start()


def tearDownModule():
    for s in servers.values():
        s.stop()


def raw_generate(server, req, timeout=harness.RPC_TIMEOUT_S):
    """Generate returning each response's bytes, so that invalid UTF-8 shows as a
    failed parse here instead of inside grpcio."""
    call = server.channel().unary_stream(
        "/hybridserve.v1.Inference/Generate",
        request_serializer=pb.GenerateRequest.SerializeToString,
        response_deserializer=lambda b: b)
    return list(call(req, timeout=timeout))


def detokenize(server, ids, skip=True):
    return server.stub().Detokenize(pb.DetokenizeRequest(token_ids=ids, skip_special_tokens=skip),
                                    timeout=harness.RPC_TIMEOUT_S).text


def tokenize(server, text, special=True):
    return list(server.stub().Tokenize(pb.TokenizeRequest(text=text, add_special_tokens=special),
                                       timeout=harness.RPC_TIMEOUT_S).token_ids)


class TextTest(unittest.TestCase):
    def check_stream(self, server, req, what):
        raws = raw_generate(server, req)
        responses = []
        for i, raw in enumerate(raws):
            try:
                responses.append(pb.GenerateResponse.FromString(raw))
            except DecodeError as e:
                self.fail(f"{what}: response {i} is not a valid GenerateResponse (invalid UTF-8 "
                          f"in text?): {e}; bytes {raw!r}")
        result = harness.Result(responses)
        for i, r in enumerate(responses):
            r.text.encode("utf-8")  # no lone surrogates
        self.assertEqual(result.text, detokenize(server, result.token_ids), what)
        return result

    def test_streamed_text_equals_detokenize(self):
        chars = 0
        for name, server in servers.items():
            for prompt in PROMPTS:
                for sampled in (False, True):
                    what = f"{name} prompt {prompt!r} {'sampled' if sampled else 'greedy'}"
                    with self.subTest(what):
                        kw = {"temperature": 1.0, "seed": 7} if sampled else {}
                        req = harness.request(text=prompt, max_new_tokens=24, **kw)
                        r = self.check_stream(server, req, what)
                        self.assertEqual(len(r.token_ids), 24, what)
                        self.assertEqual(r.prompt_token_ids, tokenize(server, prompt), what)
                        chars += len(r.text)
        self.assertGreater(chars, 100, "the outputs held almost no text")

    def test_special_tokens_in_text_when_not_skipped(self):
        server = servers["vocab266"]
        # EOS as a forced prompt continuation cannot be arranged; instead check that
        # Detokenize keeps or drops the special tokens as asked.
        self.assertEqual(detokenize(server, [256, 72, 105, 257], skip=False),
                         "<|begin_of_text|>Hi<|end_of_text|>")
        self.assertEqual(detokenize(server, [256, 72, 105, 257], skip=True), "Hi")

    def test_tokenize_round_trip(self):
        for name, server in servers.items():
            for prompt in PROMPTS:
                with self.subTest(model=name, prompt=prompt):
                    ids = tokenize(server, prompt, special=False)
                    self.assertEqual(detokenize(server, ids), prompt)
                    self.assertEqual(tokenize(server, prompt), [256] + ids)


def ascii_stop(text):
    """A short printable-ASCII substring of `text`, not at its start; its index."""
    for length in (3, 2, 1):
        for i in range(1, len(text) - length + 1):
            s = text[i:i + length]
            if all(32 < ord(c) < 127 for c in s):
                return s, text.index(s)
    return None, -1


class StopStringTest(unittest.TestCase):
    def find_case(self, server):
        for prompt in PROMPTS:
            for seed in (None, 1, 2, 3):
                kw = {"temperature": 1.0, "seed": seed} if seed is not None else {}
                req = harness.request(text=prompt, max_new_tokens=40, **kw)
                full = harness.generate(server.stub(), req)
                stop, at = ascii_stop(full.text)
                if stop and at > 0:
                    return req, full, stop, at
        self.fail("no output with an ASCII stop string candidate")

    def test_stop_string_ends_stream_before_it(self):
        server = servers["vocab266"]
        req, full, stop, at = self.find_case(server)
        what = f"prompt {req.text!r}, full text {full.text!r}, stop {stop!r}"
        req.stopping.stop.append(stop)
        r = harness.generate(server.stub(), req)
        self.assertEqual(harness.finish_name(r.finish_reason), "FINISH_REASON_STOP", what)
        self.assertEqual(r.text, full.text[:at], what)
        self.assertEqual(r.token_ids, full.token_ids[:len(r.token_ids)], what)
        self.assertIn(stop, detokenize(server, r.token_ids), f"{what}: stopped early")
        self.assertLess(len(r.token_ids), len(full.token_ids), what)

        req.stopping.include_stop_str_in_output = True
        r = harness.generate(server.stub(), req)
        self.assertEqual(harness.finish_name(r.finish_reason), "FINISH_REASON_STOP", what)
        self.assertEqual(r.text, full.text[:at] + stop, what)

    def test_stop_token_id(self):
        server = servers["vocab266"]
        req = harness.request([256, 70, 71, 72], max_new_tokens=20)
        full = harness.generate(server.stub(), req)
        k = next(i for i in range(3, len(full.token_ids)) if full.token_ids[i] != 257)
        stop_id = full.token_ids[k]
        first = full.token_ids.index(stop_id)
        req.stopping.stop_token_ids.append(stop_id)
        r = harness.generate(server.stub(), req)
        self.assertEqual(r.token_ids, full.token_ids[:first + 1])
        self.assertEqual(harness.finish_name(r.finish_reason), "FINISH_REASON_STOP")

    def test_unmatched_stop_string_changes_nothing(self):
        server = servers["vocab266"]
        req = harness.request(text="Hello", max_new_tokens=24)
        full = harness.generate(server.stub(), req)
        req.stopping.stop.append("\x01\x02\x03 never")
        r = harness.generate(server.stub(), req)
        self.assertEqual((r.token_ids, r.text), (full.token_ids, full.text))
        self.assertEqual(harness.finish_name(r.finish_reason), "FINISH_REASON_LENGTH")


if __name__ == "__main__":
    harness.main()
