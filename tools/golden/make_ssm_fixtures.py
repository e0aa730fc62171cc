#!/usr/bin/env python3
"""Writes the SSM and hybrid golden fixtures of tests/golden/fixtures/.

Mamba2ForCausalLM, BambaForCausalLM and MambaForCausalLM checkpoints: tiny, seeded,
randomly initialised models saved by transformers' own save_pretrained, plus the
logits transformers computes for fixed prompts (same file format as the Llama
fixtures, see tests/golden/README.md). Run it through scripts/make_golden.sh, which
installs the pinned torch/transformers into .venv-golden.

The reference is transformers' torch path without a cache (use_cache=False): for
Mamba-2 and Bamba that is the chunked SSD scan (torch_forward), for Mamba-1 the
slow_forward selective scan. Every saved folder is reloaded with from_pretrained and
must reproduce the recorded logits.
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
from transformers import (
    BambaConfig,
    BambaForCausalLM,
    Mamba2Config,
    Mamba2ForCausalLM,
    MambaConfig,
    MambaForCausalLM,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_llama_fixtures import (  # noqa: E402  (shared helpers, same format)
    NUM_GREEDY,
    format_expected,
    forward_logits,
    greedy_no_cache,
    make_prompts,
    max_abs,
    top2_margin,
)

RELOAD_ATOL = 1e-5
NORM_PERTURBATION = 0.1  # RMSNorm weights (incl. the gated norm) become 1 + 0.1 * randn
BIAS_STD = 0.1  # conv1d / Linear biases become 0.1 * randn (transformers zeroes them)
D_PERTURBATION = 0.5  # Mamba D skip becomes 1 + 0.5 * randn (transformers sets ones)
A_LOG_NOISE = 0.3  # A_log becomes log(1..heads) + 0.3 * randn

MAMBA2_BASE = dict(
    vocab_size=256,
    hidden_size=64,
    expand=2,  # d_inner 128
    num_heads=8,
    head_dim=16,
    state_size=16,
    conv_kernel=4,
    num_hidden_layers=2,
    layer_norm_epsilon=1e-5,
    use_conv_bias=True,
    use_bias=False,
    tie_word_embeddings=False,
    initializer_range=0.1,
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)

BAMBA_BASE = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,  # head_dim 16; BambaConfig rotates half of it (8 dims)
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    mamba_n_heads=8,
    mamba_d_head=16,
    mamba_d_state=16,
    mamba_expand=2,
    mamba_d_conv=4,
    tie_word_embeddings=False,
    initializer_range=0.1,
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)

MAMBA_BASE = dict(
    vocab_size=256,
    hidden_size=64,
    expand=2,  # d_inner 128
    state_size=16,
    conv_kernel=4,
    num_hidden_layers=2,
    layer_norm_epsilon=1e-5,
    use_conv_bias=True,
    use_bias=False,
    time_step_rank="auto",  # ceil(64 / 16) = 4
    tie_word_embeddings=False,
    initializer_range=0.1,
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)

# Full sequence lengths are 13, 31 and 72 (prompts of 5, 23, 64 plus 8 greedy tokens).
FIXTURES = [
    dict(
        name="mamba2_f32_g1_chunk8",
        arch="mamba2",
        seed=0,
        dtype="float32",
        description=(
            "Mamba2 f32, n_groups 1, 8 heads x 16, d_state 16, chunk_size 8 (divides 72, "
            "not 13 or 31), time_step_limit [0, Infinity], untied"
        ),
        config=dict(n_groups=1, chunk_size=8),
    ),
    dict(
        name="mamba2_f32_g2_chunk16_tied",
        arch="mamba2",
        seed=1,
        dtype="float32",
        description=(
            "Mamba2 f32, n_groups 2 (per-group gated RMSNorm over 64 channels), chunk_size "
            "16 (divides none of 13, 31, 72), in_proj/out_proj biases, tie_word_embeddings"
        ),
        config=dict(n_groups=2, chunk_size=16, use_bias=True, tie_word_embeddings=True),
    ),
    dict(
        name="mamba2_bf16_g4",
        arch="mamba2",
        seed=2,
        dtype="bfloat16",
        description=(
            "Mamba2 bf16 checkpoint, n_groups 4, chunk_size 256 (one padded chunk), "
            "conv kernel 3, 3 layers"
        ),
        config=dict(n_groups=4, chunk_size=256, conv_kernel=3, num_hidden_layers=3),
    ),
    dict(
        name="mamba2_f32_g4_dtlimit",
        arch="mamba2",
        seed=2,
        dtype="float32",
        description=(
            "Mamba2 f32, n_groups 4, chunk_size 1 (divides every length), finite "
            "time_step_limit [0.02, 0.06] that clamps most heads' dt, no conv bias"
        ),
        config=dict(n_groups=4, chunk_size=1, time_step_limit=[0.02, 0.06], use_conv_bias=False),
        contrast_dt_limit=[0.0, float("inf")],
    ),
]

FIXTURES += [
    dict(
        name="bamba_f32_attn1",
        arch="bamba",
        seed=0,
        dtype="float32",
        description=(
            "Bamba f32, 4 layers with attention at layer 1 (4 heads / 2 kv heads, head_dim 16, "
            "partial rotary: 8 of 16 dims), Mamba-2 layers n_groups 1, chunk_size 8, "
            "SwiGLU after every mixer, untied"
        ),
        config=dict(attn_layer_indices=[1], mamba_n_groups=1, mamba_chunk_size=8),
        contrast_full_rotary=True,
    ),
    dict(
        name="bamba_f32_attn03_g2_tied",
        arch="bamba",
        seed=1,
        dtype="float32",
        description=(
            "Bamba f32, attention at layers 0 and 3, Mamba-2 n_groups 2, chunk_size 16, "
            "mamba in/out_proj biases, attention and MLP biases, tied embeddings"
        ),
        config=dict(
            attn_layer_indices=[0, 3],
            mamba_n_groups=2,
            mamba_chunk_size=16,
            mamba_proj_bias=True,
            attention_bias=True,
            mlp_bias=True,
            tie_word_embeddings=True,
        ),
    ),
    dict(
        name="bamba_bf16_attn2_g4",
        arch="bamba",
        seed=2,
        dtype="bfloat16",
        description=(
            "Bamba bf16 checkpoint, attention at layer 2 (4 heads / 1 kv head), Mamba-2 "
            "n_groups 4, chunk_size 256, conv kernel 3, no conv bias"
        ),
        config=dict(
            attn_layer_indices=[2],
            num_key_value_heads=1,
            mamba_n_groups=4,
            mamba_chunk_size=256,
            mamba_d_conv=3,
            mamba_conv_bias=False,
        ),
    ),
]

FIXTURES += [
    dict(
        name="mamba_f32_untied",
        arch="mamba",
        seed=0,
        dtype="float32",
        description="Mamba-1 f32, d_inner 128, d_state 16, dt_rank 4 (auto), conv kernel 4, untied",
        config=dict(),
    ),
    dict(
        name="mamba_f32_bias_tied",
        arch="mamba",
        seed=1,
        dtype="float32",
        description=(
            "Mamba-1 f32, in_proj/out_proj biases, dt_rank 6, d_state 8, 3 layers, "
            "tied embeddings"
        ),
        config=dict(use_bias=True, time_step_rank=6, state_size=8, num_hidden_layers=3,
                    tie_word_embeddings=True),
    ),
    dict(
        name="mamba_bf16",
        arch="mamba",
        seed=2,
        dtype="bfloat16",
        description="Mamba-1 bf16 checkpoint, conv kernel 3, no conv bias",
        config=dict(conv_kernel=3, use_conv_bias=False),
    ),
]

ARCHS = {
    "mamba": (MambaConfig, MambaForCausalLM, MAMBA_BASE),
    "mamba2": (Mamba2Config, Mamba2ForCausalLM, MAMBA2_BASE),
    "bamba": (BambaConfig, BambaForCausalLM, BAMBA_BASE),
}


def log(msg):
    print(msg, flush=True)


def make_config(spec, **override):
    config_cls, _, base = ARCHS[spec["arch"]]
    kw = dict(base)
    kw.update(spec["config"])
    kw.update(override)
    if spec["arch"] == "bamba":
        kw["attn_implementation"] = "eager"
    return config_cls(**kw)


def model_class(spec):
    return ARCHS[spec["arch"]][1]


def build_model(spec):
    """Seeded random init in f32, with every parameter kind made non-trivial."""
    config = make_config(spec)
    torch.manual_seed(spec["seed"])
    model = model_class(spec)(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if "norm" in name and leaf == "weight":
                param.copy_(1.0 + NORM_PERTURBATION * torch.randn_like(param))
            elif leaf == "bias" and ("conv1d" in name or "proj" in name) and "dt_proj" not in name:
                param.copy_(BIAS_STD * torch.randn_like(param))
            elif leaf == "D":
                param.copy_(1.0 + D_PERTURBATION * torch.randn_like(param))
            elif leaf == "A_log":
                param.add_(A_LOG_NOISE * torch.randn_like(param))
            elif "dt_proj" in name and leaf == "bias":
                pass  # keep transformers' dt init (softplus^-1 of dt in [1e-3, 0.1])
    return model.eval()


def upcast_copy(model):
    m = type(model)(model.config).to(torch.float32)
    m.load_state_dict({k: v.to(torch.float32) for k, v in model.state_dict().items()})
    return m.eval()


def load(spec, folder, dtype):
    kw = {"attn_implementation": "eager"} if spec["arch"] == "bamba" else {}
    return model_class(spec).from_pretrained(folder, dtype=dtype, **kw).eval()


def full_width_norm_gap(spec, model_f32, ref_logits, ids):
    """Logit gap between per-group gated RMSNorm (pinned transformers, mamba_ssm, vLLM)
    and normalising over all of d_inner (transformers before per-group support)."""
    other = upcast_copy(model_f32)
    for module in other.modules():
        if hasattr(module, "group_size") and type(module).__name__.endswith("RMSNormGated"):
            module.group_size = module.weight.shape[0]
    return max_abs(forward_logits(other, ids), ref_logits)


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
    model.save_pretrained(folder, safe_serialization=True)

    model_f32 = model if native_dtype == torch.float32 else upcast_copy(model)
    model_native = load(spec, folder, native_dtype) if native_dtype != torch.float32 else None
    vocab = model.config.vocab_size
    cases = []
    tensors = {}
    for i, prompt in enumerate(make_prompts(spec["seed"], vocab)):
        full = greedy_no_cache(model_f32, prompt, NUM_GREEDY)
        logits_f32 = forward_logits(model_f32, full)
        argmax = torch.argmax(logits_f32, dim=-1).tolist()
        for p in range(len(prompt) - 1, len(full) - 1):
            if argmax[p] != full[p + 1]:
                raise SystemExit(f"{name} case {i}: greedy loop and full forward disagree at position {p}")
        case = {"prompt_ids": prompt, "full_ids": full, "num_greedy": NUM_GREEDY}
        tensors[f"case{i}.logits_f32"] = logits_f32.contiguous()
        tensors[f"case{i}.top2_margin"] = top2_margin(logits_f32)
        if model_native is not None:
            logits_native = forward_logits(model_native, full)
            tensors[f"case{i}.logits_native"] = logits_native.contiguous()
            case["bf16_vs_f32_max_abs_gap"] = max_abs(logits_native, logits_f32)
        n_groups = getattr(model.config, "n_groups", getattr(model.config, "mamba_n_groups", 1))
        if n_groups > 1:
            case["full_width_gated_norm_max_abs_gap"] = full_width_norm_gap(spec, model_f32, logits_f32, full)
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


def verify(spec, folder, expected, tensors, model_f32):
    name = spec["name"]
    files = sorted(os.listdir(folder))
    if "model.safetensors" not in files:
        raise SystemExit(f"{name}: no model.safetensors in {files}")
    want = torch.bfloat16 if spec["dtype"] == "bfloat16" else torch.float32
    for k, v in safetensors.torch.load_file(os.path.join(folder, "model.safetensors")).items():
        if v.dtype != want:
            raise SystemExit(f"{name}: {k} is {v.dtype}, want {want}")
    with open(os.path.join(folder, "config.json")) as f:
        text = f.read()
    if "time_step_limit" in text and "Infinity" not in text and "contrast_dt_limit" not in spec:
        raise SystemExit(f"{name}: config.json does not write time_step_limit with Infinity")

    reloaded_f32 = load(spec, folder, torch.float32)
    reloaded_native = load(spec, folder, want) if want != torch.float32 else None
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

    last = len(expected["cases"]) - 1
    full = expected["cases"][last]["full_ids"]
    if "contrast_dt_limit" in spec:
        other = model_class(spec)(make_config(spec, time_step_limit=spec["contrast_dt_limit"]))
        other.load_state_dict(model_f32.state_dict())
        other.eval()
        gap = max_abs(forward_logits(other, full), tensors[f"case{last}.logits_f32"])
        log(f"  {name}: logit gap to the same weights without the dt clamp: {gap:.4g}")
        if gap < 0.1:
            raise SystemExit(f"{name}: time_step_limit barely changes the logits ({gap})")
    if spec.get("contrast_full_rotary"):
        # Rotating all of head_dim instead of transformers' hard-coded half must
        # move the logits, or the fixture would not test partial rotary.
        other = upcast_copy(model_f32)
        rot = other.model.rotary_emb
        head_dim = other.config.hidden_size // other.config.num_attention_heads
        theta = other.config.rope_parameters["rope_theta"]
        rot.inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
        gap = max_abs(forward_logits(other, full), tensors[f"case{last}.logits_f32"])
        log(f"  {name}: logit gap to rotating all {head_dim} head dims: {gap:.4g}")
        if gap < 0.1:
            raise SystemExit(f"{name}: partial rotary barely changes the logits ({gap})")


def summarize(name, expected, tensors, folder):
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    margins = torch.cat([tensors[k] for k in sorted(tensors) if k.endswith("top2_margin")])
    line = (
        f"{name}: {size / 1024:.0f} KiB, top2 margin min {margins.min().item():.4g} "
        f"median {margins.median().item():.4g}, positions with margin <= 5e-3: "
        f"{int((margins <= 5e-3).sum())}/{margins.numel()}"
    )
    for key in ("bf16_vs_f32_max_abs_gap", "full_width_gated_norm_max_abs_gap"):
        gaps = [c[key] for c in expected["cases"] if key in c]
        if gaps:
            line += f", {key} per case {[round(g, 5) for g in gaps]}"
    log(line)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "..", "tests", "golden", "fixtures"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=default_out, help="fixture root (default: tests/golden/fixtures)")
    ap.add_argument("--only", nargs="*", help="fixture names to (re)make; default all")
    args = ap.parse_args()

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
    log("all SSM fixtures written and verified")


if __name__ == "__main__":
    sys.exit(main())
