#!/usr/bin/env bash
# Regenerates the golden fixtures of tests/golden/fixtures/ with the pinned
# torch/transformers of tools/golden/requirements.txt, installed into .venv-golden.
# Not part of CI (the fixtures are committed); the first run downloads torch and its
# CUDA wheels from PyPI (several GiB) and takes minutes. Arguments are passed on to
# tools/golden/make_llama_fixtures.py and tools/golden/make_ssm_fixtures.py (e.g.
# --only llama_f32_mha mamba2_bf16_g4); each makes the fixtures it knows.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-golden"
req="$root/tools/golden/requirements.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
# No accelerator, no network at run time: the models are made here, not downloaded.
export CUDA_VISIBLE_DEVICES="" HF_HUB_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1
"$venv/bin/python" "$root/tools/golden/make_llama_fixtures.py" "$@"
exec "$venv/bin/python" "$root/tools/golden/make_ssm_fixtures.py" "$@"
