#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, makes the demo
# model if it is not there yet, and starts the server on it (CPU when there is
# no GPU), in the foreground. Ctrl-C (or SIGTERM) drains and stops it.
#   scripts/demo.sh [extra hybridserve flags, e.g. --port 50052]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CCACHE_DIR=${CCACHE_DIR:-$root/.ccache}
bash scripts/setup.sh
bash scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo
model=${HS_DEMO_MODEL:-$root/demo-model}
if [ ! -f "$model/config.json" ]; then
  build/tools/hs_make_tiny_model --architecture bamba --preset demo --out "$model"
fi
port=50051
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --port=*) port=${args[$i]#--port=} ;;
    --port) port=${args[$((i + 1))]} ;;
  esac
done
cat <<MSG

Starting hybridserve on localhost:$port with the demo model ($model).
Once it says "serving", try from another terminal:
  build/tools/hs_client generate --server localhost:$port --prompt "Hello" --max_new_tokens 32
  build/tools/hs_client models --server localhost:$port

MSG
exec build/server/hybridserve --model "$model" --port "$port" "$@"
