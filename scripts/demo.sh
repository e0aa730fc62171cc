#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, makes the demo
# model if it is not there yet, and runs it. Until the server lands this runs
# the offline runner on the demo model (CPU).
#   scripts/demo.sh [extra hs_run_offline flags]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CCACHE_DIR=${CCACHE_DIR:-$root/.ccache}
bash scripts/setup.sh
bash scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo
model=${HS_DEMO_MODEL:-$root/demo-model}
if [ ! -f "$model/config.json" ]; then
  build/tools/hs_make_tiny_model --preset demo --out "$model"
fi
echo "running the offline runner on $model (prompt: the bytes of \"Hello\")"
build/tools/hs_run_offline --model "$model" --prompt_ids 72,101,108,108,111 \
  --max_new_tokens 8 --top_n 3 "$@"
