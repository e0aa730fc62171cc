#!/usr/bin/env python3
"""Writes the dense Transformer golden fixtures of tests/golden/fixtures/.

Each fixture is a tiny, seeded, randomly initialised LlamaForCausalLM (or Mistral,
Qwen2, Qwen3: the spec's "arch") saved by transformers' own save_pretrained, plus
the logits transformers computes for fixed
prompts (see tests/golden/README.md for the file format). Run it through
scripts/make_golden.sh, which installs the pinned torch/transformers into .venv-golden.

The script checks itself: every saved folder is reloaded with from_pretrained and
its logits must reproduce the recorded ones, so the committed checkpoint is the one
that was measured.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import safetensors.torch
import torch
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

# spec["arch"] -> (config class, model class); "llama" when absent.
CLASSES = {
    "llama": (LlamaConfig, LlamaForCausalLM),
    "mistral": (MistralConfig, MistralForCausalLM),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM),
}


def model_class(spec):
    return CLASSES[spec.get("arch", "llama")][1]

NUM_GREEDY = 8
PROMPT_LENGTHS = (5, 23, 64)
# Weight init scale (LlamaConfig.initializer_range; it only affects initialisation).
# transformers' default of 0.02 makes these tiny models nearly position-blind: the
# logit gap between llama3-scaled and plain RoPE is then ~4e-3, barely above the f32
# tolerance of 1e-3, so a RoPE bug could pass. At 0.1 attention is far from uniform
# and that gap is ~1.5.
INITIALIZER_RANGE = 0.1
NORM_PERTURBATION = 0.1  # RMSNorm weights become 1 + 0.1 * randn
BIAS_STD = 0.1  # Linear biases (attention_bias=True) become 0.1 * randn
# Reload check: the reloaded model must reproduce the recorded logits this closely
# (same weights, same code; differences can only come from kernel scheduling).
RELOAD_ATOL = 1e-5

BASE = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    initializer_range=INITIALIZER_RANGE,
    tie_word_embeddings=False,
)

DEFAULT_ROPE = {"rope_type": "default", "rope_theta": 10000.0}

FIXTURES = [
    dict(
        name="llama_f32_mha",
        seed=0,
        dtype="float32",
        description="f32, 4 heads / 4 kv heads (MHA), untied embeddings, default RoPE theta 10000",
        config=dict(num_attention_heads=4, num_key_value_heads=4, rope_parameters=dict(DEFAULT_ROPE)),
    ),
    dict(
        name="llama_f32_gqa_tied",
        seed=1,
        dtype="float32",
        description="f32, 4 heads / 2 kv heads (GQA), tie_word_embeddings=True (no lm_head.weight in the checkpoint)",
        config=dict(
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            rope_parameters=dict(DEFAULT_ROPE),
        ),
    ),
    dict(
        name="llama_bf16_gqa",
        seed=2,
        dtype="bfloat16",
        description="bf16 checkpoint, 8 heads / 2 kv heads (head_dim 8), untied embeddings, default RoPE",
        config=dict(num_attention_heads=8, num_key_value_heads=2, rope_parameters=dict(DEFAULT_ROPE)),
    ),
    dict(
        name="llama_f32_headdim_llama3",
        seed=0,
        dtype="float32",
        description=(
            "f32, 4 heads / 2 kv heads with explicit head_dim 32 (!= hidden 64 / 4 heads), "
            "llama3 RoPE scaling (factor 8, low_freq_factor 1, high_freq_factor 4, "
            "original_max_position_embeddings 32, theta 500000): of the 16 frequencies one is "
            "kept, one is smoothed and the rest are divided by 8"
        ),
        config=dict(
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 32,
            },
        ),
        # Same weights with plain RoPE at the same theta must give clearly different
        # logits, or the fixture would not test the scaling.
        contrast_rope={"rope_type": "default", "rope_theta": 500000.0},
    ),
    dict(
        name="llama_f32_sharded",
        seed=1,
        dtype="float32",
        description="f32, 4 heads / 4 kv heads, 3 layers, saved as several safetensors shards with model.safetensors.index.json",
        config=dict(
            num_attention_heads=4,
            num_key_value_heads=4,
            num_hidden_layers=3,
            rope_parameters=dict(DEFAULT_ROPE),
        ),
        max_shard_size="200KB",
    ),
    dict(
        name="llama_bf16_linear_bias",
        seed=2,
        dtype="bfloat16",
        description=(
            "bf16 checkpoint, 4 heads / 1 kv head (MQA), linear RoPE scaling factor 2, "
            "attention_bias=True (q/k/v/o biases), tie_word_embeddings=True"
        ),
        config=dict(
            num_attention_heads=4,
            num_key_value_heads=1,
            attention_bias=True,
            tie_word_embeddings=True,
            rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0},
        ),
        contrast_rope=dict(DEFAULT_ROPE),
    ),
    dict(
        name="qwen3_f32_gqa_headdim",
        arch="qwen3",
        seed=3,
        dtype="float32",
        description=(
            "Qwen3: f32, 4 heads / 2 kv heads, explicit head_dim 32 (!= hidden 64 / 4), "
            "per-head q/k RMSNorm, tied embeddings, theta 1e6"
        ),
        config=dict(
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        ),
    ),
    dict(
        name="qwen3_bf16_bias_mqa",
        arch="qwen3",
        seed=4,
        dtype="bfloat16",
        description=(
            "Qwen3: bf16 checkpoint, 8 heads / 1 kv head (MQA), head_dim 16, "
            "attention_bias=True (q/k/v/o), 3 layers, untied"
        ),
        config=dict(
            num_attention_heads=8,
            num_key_value_heads=1,
            head_dim=16,
            num_hidden_layers=3,
            attention_bias=True,
            rope_parameters=dict(DEFAULT_ROPE),
        ),
    ),
    dict(
        name="qwen3_f32_yarn",
        arch="qwen3",
        seed=9,
        dtype="float32",
        description=(
            "Qwen3: f32, 4 heads / 2 kv heads, head_dim 32, YaRN rope (factor 4, "
            "original_max_position_embeddings 64, theta 10000; attention factor 1.139)"
        ),
        config=dict(
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                             "original_max_position_embeddings": 64},
        ),
        contrast_rope=dict(DEFAULT_ROPE),
    ),
    dict(
        name="llama_f32_gelu_tanh",
        seed=11,
        dtype="float32",
        description="f32, 4 heads / 2 kv heads, hidden_act gelu_pytorch_tanh in the gated MLP",
        config=dict(num_attention_heads=4, num_key_value_heads=2, hidden_act="gelu_pytorch_tanh",
                    rope_parameters=dict(DEFAULT_ROPE)),
    ),
    dict(
        name="mistral_f32_relu2",
        arch="mistral",
        seed=12,
        dtype="float32",
        description="Mistral: f32, 4 heads / 4 kv heads, hidden_act relu2 in the gated MLP, tied",
        config=dict(num_attention_heads=4, num_key_value_heads=4, hidden_act="relu2",
                    tie_word_embeddings=True, rope_parameters=dict(DEFAULT_ROPE)),
    ),
    dict(
        name="qwen2_f32_gqa",
        arch="qwen2",
        seed=5,
        dtype="float32",
        description="Qwen2: f32, 4 heads / 2 kv heads, q/k/v biases (no o_proj bias), untied",
        config=dict(num_attention_heads=4, num_key_value_heads=2,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
    ),
    dict(
        name="qwen2_bf16_tied",
        arch="qwen2",
        seed=6,
        dtype="bfloat16",
        description="Qwen2: bf16 checkpoint, 8 heads / 4 kv heads (head_dim 8), tied embeddings",
        config=dict(num_attention_heads=8, num_key_value_heads=4, tie_word_embeddings=True,
                    rope_parameters=dict(DEFAULT_ROPE)),
    ),
    dict(
        name="mistral_f32_window",
        arch="mistral",
        seed=7,
        dtype="float32",
        description=(
            "Mistral: f32, 4 heads / 1 kv head, sliding_window 4096 (above every context "
            "here, so attention is full), untied"
        ),
        config=dict(num_attention_heads=4, num_key_value_heads=1, sliding_window=4096,
                    rope_parameters=dict(DEFAULT_ROPE)),
    ),
    dict(
        name="mistral_bf16_headdim",
        arch="mistral",
        seed=10,
        dtype="bfloat16",
        description="Mistral: bf16 checkpoint, 2 heads / 2 kv heads, explicit head_dim 48, no window",
        config=dict(num_attention_heads=2, num_key_value_heads=2, head_dim=48,
                    sliding_window=None, rope_parameters=dict(DEFAULT_ROPE)),
    ),
]


def log(msg):
    print(msg, flush=True)


def make_config(spec, rope_override=None):
    kw = dict(BASE)
    kw.update(spec["config"])
    if rope_override is not None:
        kw["rope_parameters"] = dict(rope_override)
    return CLASSES[spec.get("arch", "llama")][0](attn_implementation="eager", **kw)


def build_model(spec):
    """Seeded random init in f32, with non-trivial RMSNorm weights and biases."""
    config = make_config(spec)
    torch.manual_seed(spec["seed"])
    model = model_class(spec)(config)
    with torch.no_grad():
        for module in model.modules():
            if "RMSNorm" in type(module).__name__:
                module.weight.copy_(1.0 + NORM_PERTURBATION * torch.randn_like(module.weight))
        # transformers initialises Linear biases to zero, which would leave
        # attention_bias untested.
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.copy_(BIAS_STD * torch.randn_like(module.bias))
    return model.eval()


def make_prompts(seed, vocab):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=gen).tolist() for n in PROMPT_LENGTHS]


@torch.no_grad()
def forward_logits(model, ids):
    """One forward pass over ids, no cache; returns [len(ids), vocab] as f32."""
    out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].to(torch.float32)


@torch.no_grad()
def greedy_no_cache(model, prompt, n):
    ids = list(prompt)
    for _ in range(n):
        logits = forward_logits(model, ids)
        ids.append(int(torch.argmax(logits[-1]).item()))
    return ids


def top2_margin(logits):
    top = torch.topk(logits, 2, dim=-1).values
    return (top[:, 0] - top[:, 1]).contiguous()


def upcast_copy(model):
    """The checkpoint's weights (whatever their dtype) upcast to f32."""
    m = type(model)(model.config).to(torch.float32)
    m.load_state_dict({k: v.to(torch.float32) for k, v in model.state_dict().items()})
    return m.eval()


def load(folder, dtype, cls=LlamaForCausalLM):
    return cls.from_pretrained(folder, dtype=dtype, attn_implementation="eager").eval()


def max_abs(a, b):
    return float((a - b).abs().max().item())


def make_fixture(spec, out_root):
    name = spec["name"]
    folder = os.path.join(out_root, name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)

    model = build_model(spec)
    native_dtype = torch.bfloat16 if spec["dtype"] == "bfloat16" else torch.float32
    if native_dtype != torch.float32:
        model = model.to(native_dtype)
    save_kw = {}
    if "max_shard_size" in spec:
        save_kw["max_shard_size"] = spec["max_shard_size"]
    model.save_pretrained(folder, safe_serialization=True, **save_kw)

    model_f32 = model if native_dtype == torch.float32 else upcast_copy(model)
    model_native = None
    if native_dtype != torch.float32:
        # The native reference is the checkpoint loaded in bf16, as a user gets it. Not
        # the in-memory model.to(bfloat16): .to() also rounds RoPE's inv_freq buffer to
        # bf16, which from_pretrained keeps in f32 (logit gap ~4e-2 between the two).
        model_native = load(folder, native_dtype, model_class(spec))
    vocab = model.config.vocab_size
    cases = []
    tensors = {}
    for i, prompt in enumerate(make_prompts(spec["seed"], vocab)):
        full = greedy_no_cache(model_f32, prompt, NUM_GREEDY)
        logits_f32 = forward_logits(model_f32, full)
        # The single forward over full_ids must agree with the step-by-step greedy loop.
        argmax = torch.argmax(logits_f32, dim=-1).tolist()
        for p in range(len(prompt) - 1, len(full) - 1):
            if argmax[p] != full[p + 1]:
                raise SystemExit(f"{name} case {i}: greedy loop and full forward disagree at position {p}")
        case = {"prompt_ids": prompt, "full_ids": full, "num_greedy": NUM_GREEDY}
        tensors[f"case{i}.logits_f32"] = logits_f32.contiguous()
        tensors[f"case{i}.top2_margin"] = top2_margin(logits_f32)
        if native_dtype != torch.float32:
            logits_native = forward_logits(model_native, full)
            tensors[f"case{i}.logits_native"] = logits_native.contiguous()
            case["bf16_vs_f32_max_abs_gap"] = max_abs(logits_native, logits_f32)
        cases.append(case)

    safetensors.torch.save_file(tensors, os.path.join(folder, "expected.safetensors"), metadata={"fixture": name})
    expected = {
        "fixture": name,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "seed": spec["seed"],
        "checkpoint_dtype": spec["dtype"],
        "description": spec["description"],
        "cases": cases,
    }
    with open(os.path.join(folder, "expected.json"), "w") as f:
        f.write(format_expected(expected))

    verify(spec, folder, expected, tensors, model_f32)
    return expected, tensors


def format_expected(expected):
    """JSON with one line per key and one line per case (id lists stay readable)."""
    lines = []
    for key, value in expected.items():
        if key == "cases":
            cases = ",\n".join("  " + json.dumps(c) for c in value)
            lines.append(f' "cases": [\n{cases}\n ]')
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def verify(spec, folder, expected, tensors, model_f32):
    name = spec["name"]
    files = sorted(os.listdir(folder))
    if "max_shard_size" in spec:
        shards = [f for f in files if f.startswith("model-") and f.endswith(".safetensors")]
        if len(shards) < 2 or "model.safetensors.index.json" not in files:
            raise SystemExit(f"{name}: expected >= 2 shards and an index, found {files}")
    elif "model.safetensors" not in files:
        raise SystemExit(f"{name}: no model.safetensors in {files}")

    # The checkpoint's weight dtype is what the fixture says.
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    want = torch.bfloat16 if spec["dtype"] == "bfloat16" else torch.float32
    for fn in files:
        if fn.startswith("model") and fn.endswith(".safetensors"):
            for k, v in safetensors.torch.load_file(os.path.join(folder, fn)).items():
                if v.dtype != want:
                    raise SystemExit(f"{name}: {fn}:{k} is {v.dtype}, want {want}")

    # Reload from the folder and reproduce.
    reloaded_f32 = load(folder, torch.float32, model_class(spec))
    reloaded_native = None
    if want != torch.float32:
        reloaded_native = load(folder, want, model_class(spec))
    for i, case in enumerate(expected["cases"]):
        full = case["full_ids"]
        gap = max_abs(forward_logits(reloaded_f32, full), tensors[f"case{i}.logits_f32"])
        if gap > RELOAD_ATOL:
            raise SystemExit(f"{name} case {i}: reloaded f32 logits differ by {gap}")
        if greedy_no_cache(reloaded_f32, case["prompt_ids"], NUM_GREEDY) != full:
            raise SystemExit(f"{name} case {i}: reloaded model's greedy continuation differs")
        if reloaded_native is not None:
            gap = max_abs(forward_logits(reloaded_native, full), tensors[f"case{i}.logits_native"])
            if gap > RELOAD_ATOL:
                raise SystemExit(f"{name} case {i}: reloaded bf16 logits differ by {gap}")

    # The fixture must exercise its RoPE variant: plain RoPE on the same weights must
    # move the logits far beyond the f32 tolerance.
    if "contrast_rope" in spec:
        other = model_class(spec)(make_config(spec, spec["contrast_rope"]))
        other.load_state_dict(model_f32.state_dict())
        other.eval()
        full = expected["cases"][-1]["full_ids"]
        gap = max_abs(forward_logits(other, full), tensors[f"case{len(expected['cases']) - 1}.logits_f32"])
        log(f"  {name}: logit gap to {spec['contrast_rope']['rope_type']} RoPE on the same weights: {gap:.4g}")
        if gap < 0.1:
            raise SystemExit(f"{name}: RoPE variant barely changes the logits ({gap}); fixture would not test it")
    # Likewise the biases must matter (Qwen2's q/k/v biases are always there).
    if any(isinstance(m, torch.nn.Linear) and m.bias is not None for m in model_f32.modules()):
        nobias = upcast_copy(model_f32)
        with torch.no_grad():
            for module in nobias.modules():
                if isinstance(module, torch.nn.Linear) and module.bias is not None:
                    module.bias.zero_()
        full = expected["cases"][-1]["full_ids"]
        gap = max_abs(forward_logits(nobias, full), tensors[f"case{len(expected['cases']) - 1}.logits_f32"])
        log(f"  {name}: logit gap to the same weights with zero biases: {gap:.4g}")
        if gap < 0.1:
            raise SystemExit(f"{name}: biases barely change the logits ({gap}); fixture would not test them")
    return cfg


def summarize(name, expected, tensors, folder):
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    margins = torch.cat([tensors[k] for k in sorted(tensors) if k.endswith("top2_margin")])
    line = (
        f"{name}: {size / 1024:.0f} KiB, files {sorted(os.listdir(folder))}, "
        f"top2 margin min {margins.min().item():.4g} median {margins.median().item():.4g}, "
        f"positions with margin <= 5e-3: {int((margins <= 5e-3).sum())}/{margins.numel()}"
    )
    gaps = [c["bf16_vs_f32_max_abs_gap"] for c in expected["cases"] if "bf16_vs_f32_max_abs_gap" in c]
    if gaps:
        line += f", bf16-vs-f32 max gap per case {[round(g, 5) for g in gaps]}"
    log(line)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "..", "tests", "golden", "fixtures"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=default_out, help="fixture root (default: tests/golden/fixtures)")
    ap.add_argument("--only", nargs="*", help="fixture names to (re)make; default all")
    args = ap.parse_args()

    # Reproducible CPU numerics: one thread, deterministic kernels, no accelerator.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    log(f"transformers {transformers.__version__}, torch {torch.__version__}, numpy {np.__version__}")
    for spec in FIXTURES:
        if args.only and spec["name"] not in args.only:
            continue
        log(f"making {spec['name']}")
        expected, tensors = make_fixture(spec, args.out)
        summarize(spec["name"], expected, tensors, os.path.join(args.out, spec["name"]))
    log("all fixtures written and verified")


if __name__ == "__main__":
    sys.exit(main())
