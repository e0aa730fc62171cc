#!/usr/bin/env bash
# Runs the load generator in its own venv with the pinned packages of
# tools/loadgen/requirements.txt (made on first use, refreshed when the file
# changes). Arguments go to loadgen.py:
#   tools/loadgen/run.sh run --target 127.0.0.1:50051 --concurrency 16 --num-requests 200
#   tools/loadgen/run.sh compare a.json b.json
# HS_LOADGEN_PYTHON=<interpreter> uses an existing environment instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${HS_LOADGEN_PYTHON:-}" ]; then
  exec "$HS_LOADGEN_PYTHON" "$here/loadgen.py" "$@"
fi
venv=${HS_LOADGEN_VENV:-$(cd "$here/../.." && pwd)/.venv-loadgen}
req=$here/requirements.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
  echo "$want" > "$stamp"
fi
exec "$venv/bin/python" "$here/loadgen.py" "$@"
