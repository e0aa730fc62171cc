#!/usr/bin/env python3
"""Checks hybridserve against transformers on checkpoints with random configurations.

For each registered dense family (Llama, Mistral, Qwen2, Qwen3) it draws random
configurations the committed fixtures never used (head_dim, head and kv-head counts,
layers, tied or not, biases, rope theta, bf16 or f32, sharded or not), writes a seeded
random checkpoint with transformers' save_pretrained, runs one prompt through
transformers (eager, f32) and through `hs_run_offline`, and compares the top-5
logprobs at every prompt position. Not part of CI (needs torch): run it with the
golden venv,

  .venv-golden/bin/python tools/golden/random_config_check.py --hs_run_offline build/tools/hs_run_offline

It prints one line per checkpoint and exits non-zero if any gap exceeds the tolerance
(f32: 1e-3; bf16 checkpoints are compared with their weights upcast, as the CPU
backend computes them, so the same tolerance applies).
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile

import torch
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

FAMILIES = {
    "llama": (LlamaConfig, LlamaForCausalLM),
    "mistral": (MistralConfig, MistralForCausalLM),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM),
}
TOLERANCE = 1e-3


def random_config(family, rng):
    kv = rng.choice([1, 2, 3, 4])
    heads = kv * rng.choice([1, 2, 3])
    head_dim = rng.choice([8, 16, 24, 40, 64])
    kw = dict(
        vocab_size=rng.choice([97, 256, 300]),
        hidden_size=heads * rng.choice([8, 16]),
        intermediate_size=rng.choice([40, 64, 176]),
        num_hidden_layers=rng.choice([1, 2, 3]),
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=head_dim,
        max_position_embeddings=512,
        rms_norm_eps=rng.choice([1e-5, 1e-6]),
        tie_word_embeddings=rng.random() < 0.5,
        initializer_range=0.1,
        rope_parameters={"rope_type": "default", "rope_theta": rng.choice([10000.0, 1e6])},
        attn_implementation="eager",
    )
    if family in ("llama", "qwen3"):
        kw["attention_bias"] = rng.random() < 0.5
    if family == "mistral":
        kw["sliding_window"] = rng.choice([None, 4096])
    return FAMILIES[family][0](**kw)


def build(family, config, seed):
    torch.manual_seed(seed)
    model = FAMILIES[family][1](config)
    with torch.no_grad():
        for m in model.modules():
            if "RMSNorm" in type(m).__name__:
                m.weight.copy_(1.0 + 0.1 * torch.randn_like(m.weight))
            if isinstance(m, torch.nn.Linear) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn_like(m.bias))
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hs_run_offline", required=True)
    ap.add_argument("--per_family", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    worst, failures = 0.0, 0
    for family in FAMILIES:
        for i in range(args.per_family):
            config = random_config(family, rng)
            model = build(family, config, rng.randrange(1 << 30))
            bf16 = rng.random() < 0.4
            shard = rng.random() < 0.3
            prompt = [rng.randrange(config.vocab_size) for _ in range(rng.randrange(2, 40))]
            with tempfile.TemporaryDirectory() as d:
                saved = model.to(torch.bfloat16) if bf16 else model
                kw = {"max_shard_size": "100KB"} if shard else {}
                saved.save_pretrained(d, safe_serialization=True, **kw)
                ref = FAMILIES[family][1].from_pretrained(
                    d, dtype=torch.float32, attn_implementation="eager").eval()
                with torch.no_grad():
                    logits = ref(input_ids=torch.tensor([prompt]), use_cache=False).logits[0]
                logp = torch.log_softmax(logits.double(), dim=-1)
                out = subprocess.run(
                    [args.hs_run_offline, "--model", d, "--prompt_ids", ",".join(map(str, prompt)),
                     "--max_new_tokens", "1", "--top_n", "5", "--threads", "2", "--quiet"],
                    capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{family} #{i}: hs_run_offline failed: {out.stderr.strip()}")
                failures += 1
                continue
            result = json.loads(out.stdout)
            gap = 0.0
            for p, pos in enumerate(result["prompt"][1:]):  # row p predicts position p + 1
                for t in pos["top"]:
                    gap = max(gap, abs(t["logprob"] - logp[p, t["id"]].item()))
            gen = result["generated"][0]
            for t in gen["top"]:
                gap = max(gap, abs(t["logprob"] - logp[len(prompt) - 1, t["id"]].item()))
            worst = max(worst, gap)
            ok = gap <= TOLERANCE
            failures += 0 if ok else 1
            desc = (f"heads {config.num_attention_heads}/{config.num_key_value_heads} head_dim "
                    f"{config.head_dim} hidden {config.hidden_size} layers {config.num_hidden_layers} "
                    f"tied {config.tie_word_embeddings} bias {getattr(config, 'attention_bias', '-')} "
                    f"{'bf16' if bf16 else 'f32'}{' sharded' if shard else ''}")
            print(f"{family} #{i}: {desc}: max logprob gap {gap:.2e} {'ok' if ok else 'FAIL'}",
                  flush=True)
    print(f"worst gap {worst:.2e}; {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
