#!/usr/bin/env bash
# Soak test (outside CI, bounded): builds the server if needed, makes the demo
# model if needed (as scripts/demo.sh does), starts the server on a free port,
# drives mixed load (lengths, cancellations, priorities, deadlines) with
# tools/loadgen/soak.py, then stops the server (SIGTERM, exit 0 expected).
# Reports requests served, errors (unexpected ones must be zero), resident
# memory after warm-up and at the end (within 5%), and free KV blocks and state
# slots back to their initial counts. Exit 0 on pass.
#   scripts/soak.sh [--duration SECONDS (default 600)] [--workers N] [-- extra server flags]
# Environment: HS_BUILD_DIR (default build), HS_DEMO_MODEL (default demo-model),
# HS_LOADGEN_PYTHON (an interpreter with grpcio + grpcio-tools; default: the
# venv tools/loadgen/run.sh makes), HS_SOAK_OUT (report folder, default a temp one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
duration=600
workers=12
server_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --duration=*) duration=${1#--duration=}; shift ;;
    --workers) workers=$2; shift 2 ;;
    --workers=*) workers=${1#--workers=}; shift ;;
    --) shift; server_args=("$@"); break ;;
    *) echo "soak: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

build=${HS_BUILD_DIR:-$root/build}
export CCACHE_DIR=${CCACHE_DIR:-$root/.ccache}
if [ ! -x "$build/server/hybridserve" ] || [ ! -x "$build/tools/hs_make_tiny_model" ]; then
  echo "soak: building hybridserve in $build"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j "$(nproc)" --target hybridserve hs_make_tiny_model
fi
model=${HS_DEMO_MODEL:-$root/demo-model}
if [ ! -f "$model/config.json" ]; then
  "$build/tools/hs_make_tiny_model" --architecture bamba --preset demo --out "$model"
fi

python=${HS_LOADGEN_PYTHON:-}
if [ -z "$python" ]; then
  venv=${HS_LOADGEN_VENV:-$root/.venv-loadgen}
  req=$root/tools/loadgen/requirements.txt
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
    echo "$want" > "$venv/.requirements.sha256"
  fi
  python=$venv/bin/python
fi

out=${HS_SOAK_OUT:-$(mktemp -d -t hs_soak.XXXXXX)}
mkdir -p "$out"
ready=$out/ready
rm -f "$ready"
"$build/server/hybridserve" --model "$model" --host 127.0.0.1 --port 0 --metrics-port 0 \
  --ready-file "$ready" --drain-timeout 60 "${server_args[@]}" >"$out/server.log" 2>&1 &
pid=$!
cleanup() { if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi; }
trap cleanup EXIT
for _ in $(seq 1 600); do
  [ -s "$ready" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "soak: the server exited before it was ready:" >&2
    tail -n 20 "$out/server.log" >&2
    exit 1
  fi
  sleep 0.2
done
[ -s "$ready" ] || { echo "soak: server not ready after 120 s" >&2; exit 1; }
port=$(head -n 1 "$ready")
echo "soak: server pid $pid on 127.0.0.1:$port, model $model, log $out/server.log"

status=0
"$python" "$root/tools/loadgen/soak.py" --target "127.0.0.1:$port" --pid "$pid" \
  --duration "$duration" --workers "$workers" --json "$out/report.json" || status=$?

kill -TERM "$pid"
server_status=0
wait "$pid" || server_status=$?
trap - EXIT
if [ "$server_status" -ne 0 ]; then
  echo "soak: FAIL: the server exited with $server_status after SIGTERM" >&2
  tail -n 20 "$out/server.log" >&2
  status=1
fi
echo "soak: report in $out/report.json; server log $out/server.log"
exit "$status"
