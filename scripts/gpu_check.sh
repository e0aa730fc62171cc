#!/usr/bin/env bash
# The one prepared GPU check (issue 7): parity tests, then the benchmark, on a
# GPU machine that has CUDA but none of our other libraries. Two modes:
#
#   scripts/gpu_check.sh prepare   (here, on the build machine)
#     Builds the GPU test binaries and hs_gpu_bench in build-gpu (CUDA for
#     sm_90a), strips them, and packs them with every shared library they need
#     that the GPU machine may lack (from ldd; not libc / libm / libcuda, and
#     not cuBLAS / cudart, which come with CUDA there) into
#     .gpu-carry/bundle.tar.xz (ignored by git through .git/info/exclude).
#     Checks that the working tree that travels plus .gpu-carry is under
#     64 MiB. The golden fixtures are tracked files: they travel with the tree.
#
#   scripts/gpu_check.sh run       (on the GPU machine, from the repo root)
#     Unpacks the bundle to a temporary folder, runs each parity test binary
#     (gtest JSON into $OUT, failing inputs into a fail folder packed as
#     $OUT/fail.tar.xz), keeps going past failures, then the benchmark with a
#     timeout, and writes $OUT/summary.txt. At most 8 files in $OUT:
#     summary.txt tests.log gtest_<binary>.json (3) bench.log bench.json
#     fail.tar.xz. Under 8 minutes in all.
#
# See tests/gpu/README.md for the device tool call. Environment: HS_GPU_QUICK=1
# runs the benchmark with --quick; HS_GPU_ALLOW_STUB=1 lets prepare pack a
# build without the CUDA backend (to test the script itself).
#
# Rehearsal without a GPU: HS_GPU_EMU=1 scripts/gpu_check.sh prepare packs the
# same three parity binaries and the benchmark built against the CPU emulator
# of tests/cuda_emu (with its stand-in libcublas.so.13) instead; `run` then
# works here end to end (real passes, gtest JSON, benchmark lines, summary),
# with 5x the time limits and the benchmark at --tiny sizes. Its summary says
# REHEARSAL: nothing in it ran on a GPU.
set -uo pipefail

MODE="${1:-}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARRY="$ROOT/.gpu-carry"
BUILD="$ROOT/build-gpu"
TESTS=(cuda_ops_parity_test cuda_ssm_parity_test cuda_model_parity_test)
# Seconds each binary may run on the GPU machine (the CPU references included).
declare -A TEST_TIMEOUT=([cuda_ops_parity_test]=100 [cuda_ssm_parity_test]=80
                         [cuda_model_parity_test]=90)
BENCH_TIMEOUT=200          # hard limit for hs_gpu_bench
BENCH_BUDGET=150           # cells not started by then are skipped
LIMIT_BYTES=$((64 * 1024 * 1024))

die() { echo "gpu_check: $*" >&2; exit 1; }

# Libraries the GPU machine has (or must have) itself: never carried.
is_system_lib() {
  case "$(basename "$1")" in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|linux-vdso*) return 0 ;;
    libcuda.so*|libnvidia*|libcublas*|libcublasLt*|libcudart*) return 0 ;;
  esac
  return 1
}
# Carried, but used there only when the machine has no such library.
is_fallback_lib() {
  case "$(basename "$1")" in
    libstdc++.so*|libgcc_s.so*|libgomp.so*|libgfortran.so*|libquadmath.so*) return 0 ;;
  esac
  return 1
}

prepare() {
  cd "$ROOT" || die "no repo root"
  mkdir -p .git/info
  grep -qx '/.gpu-carry/' .git/info/exclude 2>/dev/null || echo '/.gpu-carry/' >> .git/info/exclude

  export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=true CCACHE_DIR="$ROOT/.ccache"
  local py=""
  [[ -f /tmp/hs_python ]] && py="$(cat /tmp/hs_python)"
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHS_CUDA=ON \
    -DHS_CUDA_ARCHS=90a -DHS_SANITIZE=OFF -DHS_FUZZ=OFF -DHS_TSAN=OFF -DHS_TEST_PYTHON="$py" >/dev/null || die "cmake configure failed"
  local emu="${HS_GPU_EMU:-0}" bins=()
  if [[ $emu == 1 ]]; then
    cmake --build "$BUILD" -j2 --target "${TESTS[@]/#/emu_}" emu_hs_gpu_bench hs_cuda_emu_cublas ||
      die "build failed"
    for t in "${TESTS[@]}"; do bins+=("$BUILD/tests/cuda_emu/emu_$t"); done
    bins+=("$BUILD/tests/cuda_emu/emu_hs_gpu_bench")
  else
    cmake --build "$BUILD" -j2 --target "${TESTS[@]}" hs_gpu_bench || die "build failed"
    for t in "${TESTS[@]}"; do bins+=("$BUILD/tests/gpu/$t"); done
    bins+=("$BUILD/tests/gpu/hs_gpu_bench")
  fi
  if grep -q "HS_HAVE_CUDA undefined" "${bins[0]}"; then
    if [[ "${HS_GPU_ALLOW_STUB:-0}" != 1 ]]; then
      die "build-gpu has no CUDA backend (engine/backend/cuda not built): the GPU run would only skip. Set HS_GPU_ALLOW_STUB=1 to pack it anyway."
    fi
    echo "gpu_check: WARNING: packing a build WITHOUT the CUDA backend (every GPU test will skip)"
  fi

  local stage
  stage="$(mktemp -d)"
  mkdir -p "$stage/bin" "$stage/lib" "$stage/lib-fallback"
  for b in "${bins[@]}"; do
    local name
    name="$(basename "$b")"
    strip --strip-debug -o "$stage/bin/${name#emu_}" "$b" || die "strip $b"
  done
  if [[ $emu == 1 ]]; then
    cp "$BUILD/tests/cuda_emu/emu_lib/libcublas.so.13" "$stage/lib/" || die "no emulator cuBLAS"
    # The benchmark's arguments in the rehearsal (toy models, small ceilings).
    echo "--tiny --contexts 64,256 --batches 1,2 --prefill_tokens 256 --decode_steps 3 \
--gpu_memory_fraction 0.1" > "$stage/EMU"
    echo "gpu_check: REHEARSAL bundle: the CPU emulator's binaries, not for a GPU"
  fi
  # Every resolved library of every binary, by its soname.
  local missing=0
  while read -r name path; do
    if [[ "$path" == "not" ]]; then
      echo "gpu_check: $name not found by ldd here"; missing=1; continue
    fi
    [[ -z "$path" || ! -f "$path" ]] && continue
    is_system_lib "$path" && continue
    if is_fallback_lib "$path"; then
      cp -L "$path" "$stage/lib-fallback/$name"
    else
      cp -L "$path" "$stage/lib/$name"
    fi
  done < <(for b in "${bins[@]}"; do ldd "$b"; done | awk '/=>/ {print $1, $3}' | sort -u)
  [[ $missing == 0 ]] || die "unresolved libraries here"
  git rev-parse HEAD > "$stage/COMMIT" 2>/dev/null
  git status --short >> "$stage/COMMIT" 2>/dev/null

  rm -rf "$CARRY"
  mkdir -p "$CARRY"
  echo "gpu_check: packing $(du -sh "$stage" | cut -f1) (xz)..."
  tar -C "$stage" -cf - . | xz -6 -T2 > "$CARRY/bundle.tar.xz" || die "tar/xz failed"
  rm -rf "$stage"

  local tree carry total
  tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null |
         awk '{s += $1} END {print s + 0}')
  carry=$(du -sb "$CARRY" | cut -f1)
  total=$((tree + carry))
  awk -v t="$tree" -v c="$carry" 'BEGIN {
    printf "gpu_check: working tree %.1f MiB + .gpu-carry %.1f MiB = %.1f MiB (limit 64 MiB)\n",
      t / 1048576, c / 1048576, (t + c) / 1048576 }'
  [[ $total -lt $LIMIT_BYTES ]] || die "over the 64 MiB limit"
  echo "gpu_check: ready. Device call: see tests/gpu/README.md"
}

# Directories on this machine that hold `lib` (searching the usual CUDA places).
find_lib_dirs() {
  local lib="$1"
  {
    ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l {print $NF}' | xargs -r -n1 dirname
    find /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib /usr/lib/x86_64-linux-gnu \
      /opt /usr/local/lib/python3* /usr/lib/python3* -name "$lib" 2>/dev/null | xargs -r -n1 dirname
  } | xargs -r -n1 realpath 2>/dev/null | awk '!seen[$0]++' | head -3
}

run() {
  cd "$ROOT" || die "no repo root"
  local start=$SECONDS
  OUT="${OUT:-$(mktemp -d)}"
  mkdir -p "$OUT"
  [[ -f "$CARRY/bundle.tar.xz" ]] || die "no $CARRY/bundle.tar.xz: run 'prepare' first and carry .gpu-carry"
  local work
  work="$(mktemp -d)"
  if ! tar -C "$work" -xJf "$CARRY/bundle.tar.xz" 2>/dev/null; then
    python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" \
      "$CARRY/bundle.tar.xz" "$work" || die "cannot unpack the bundle"
  fi
  local summary="$OUT/summary.txt" log="$OUT/tests.log" fail="$work/fail"
  mkdir -p "$fail"
  : > "$log"
  # A rehearsal bundle (HS_GPU_EMU=1 prepare): emulator binaries, longer
  # limits, the benchmark's toy arguments.
  local scale=1 bench_extra=()
  if [[ -f "$work/EMU" ]]; then
    scale=5
    read -r -a bench_extra < "$work/EMU"
  fi
  {
    if [[ -f "$work/EMU" ]]; then
      echo "REHEARSAL on the CPU emulator (tests/cuda_emu): nothing below ran on a GPU"
      nvidia-smi -L >/dev/null 2>&1 &&
        echo "WARNING: this machine has a GPU; pack the real bundle (prepare without HS_GPU_EMU)"
    fi
    echo "== gpu_check run: $(date -u +%FT%TZ) on $(hostname)"
    echo "bundle built from: $(head -1 "$work/COMMIT" 2>/dev/null)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem \
      --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
    echo "libc: $(ldd --version 2>&1 | head -1)"
  } > "$summary"

  # Library path: ours, then CUDA's cuBLAS, then fallbacks the machine lacks.
  # (The CUDA backend dlopens libcublas.so.13 at its first use: ldd does not
  # list it.)
  local ldp="$work/lib" cublas_dirs
  cublas_dirs="$(find_lib_dirs libcublas.so.13)"
  [[ -n "$cublas_dirs" ]] || echo "WARNING: libcublas.so.13 not found on this machine" >> "$summary"
  while read -r d; do [[ -n "$d" ]] && ldp="$ldp:$d"; done <<< "$cublas_dirs"
  for f in "$work"/lib-fallback/*; do
    [[ -e "$f" ]] || continue
    if ! ldconfig -p 2>/dev/null | grep -q "^[[:space:]]*$(basename "$f") "; then
      mkdir -p "$work/lib-extra"
      cp "$f" "$work/lib-extra/"
      echo "using carried $(basename "$f")" >> "$summary"
    fi
  done
  [[ -d "$work/lib-extra" ]] && ldp="$ldp:$work/lib-extra"
  export LD_LIBRARY_PATH="$ldp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export HS_SOURCE_DIR="$ROOT" HS_GPU_FAIL_DIR="$fail" HS_BINARY_DIR="$work"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >> "$summary"
  for b in "$work"/bin/*; do
    ldd "$b" | grep "not found" | sed "s|^|$(basename "$b"): missing |" >> "$summary"
  done

  local any_fail=0
  for t in "${TESTS[@]}"; do
    local t0=$SECONDS rc=0 attempt=0 excluded="" culprits=()
    echo "===== $t" >> "$log"
    # A kernel fault either kills the process or leaves the CUDA context
    # broken (every later CUDA call fails): then the test that was running is
    # left out and the binary runs again, within the binary's time limit.
    while :; do
      attempt=$((attempt + 1))
      local left=$((TEST_TIMEOUT[$t] * scale - (SECONDS - t0)))
      if ((left < 10)); then rc=124; break; fi
      local filter=() alog="$work/${t}_$attempt.log"
      [[ -n "$excluded" ]] && filter=("--gtest_filter=-${excluded#:}")
      timeout -k 5 "$left" "$work/bin/$t" "${filter[@]}" \
        --gtest_output="json:$work/gtest_${t}_$attempt.json" > "$alog" 2>&1
      rc=$?
      cat "$alog" >> "$log"
      local culprit=""
      if ((rc > 128 && rc != 137)) || { ((rc != 0 && rc != 1 && rc != 124)) &&
           [[ ! -f "$work/gtest_${t}_$attempt.json" ]]; }; then
        culprit=$(grep -o '^\[ RUN      \] .*' "$alog" | tail -1 | cut -c14-)
      elif grep -qE "cudaErrorIllegalAddress|cudaErrorLaunchFailure|illegal memory access|unspecified launch failure|misaligned address|cudaErrorIllegalInstruction" "$alog"; then
        culprit=$(grep -o '^\[  FAILED  \] [^ ]*' "$alog" | head -1 | cut -c14-)
      fi
      if [[ -n "$culprit" && $attempt -lt 4 ]] && [[ ":$excluded:" != *":$culprit:"* ]]; then
        culprits+=("$culprit")
        excluded="$excluded:$culprit"
        echo "===== $t: $culprit broke the process or the CUDA context (rc $rc); rerunning without it" >> "$log"
        continue
      fi
      break
    done
    [[ $rc == 0 && ${#culprits[@]} == 0 ]] || any_fail=1
    local counts
    # One JSON per binary: the last result of each test, culprits as failures.
    # A run stopped by its time limit writes no JSON: its log's OK / FAILED
    # lines count instead, and the test it was in counts as failed.
    local jsons=() logs=()
    for f in "$work"/gtest_"${t}"_*.json; do [[ -f "$f" ]] && jsons+=("$f"); done
    for f in "$work"/"${t}"_*.log; do [[ -f "$f" ]] && logs+=("$f"); done
    counts=$(python3 - "$OUT/gtest_$t.json" "${culprits[@]}" -- "${jsons[@]}" -- "${logs[@]}" <<'EOF' 2>&1
import json, re, sys
args = sys.argv[1:]
out = args[0]
first = args.index("--")
second = args.index("--", first + 1)
culprits = args[1:first]
attempt = lambda f: int(re.search(r"_(\d+)\.(json|log)$", f).group(1))
jsons = sorted(args[first + 1:second], key=attempt)
logs = sorted(args[second + 1:], key=attempt)
tests = {}
with_json = set()
for f in jsons:
    with_json.add(attempt(f))
    for suite in json.load(open(f)).get("testsuites", []):
        for t in suite.get("testsuite", []):
            tests[(suite["name"], t["name"])] = t
for f in logs:
    if attempt(f) in with_json:
        continue
    running = None
    for line in open(f, errors="replace"):
        m = re.match(r"\[ +(RUN|OK|FAILED|SKIPPED) +\] (\S+)\.([^\s.,]+)(\s|,|$)", line)
        if not m:
            continue
        kind, suite, name = m.group(1), m.group(2), m.group(3)
        if kind == "RUN":
            running = (suite, name)
            continue
        if running != (suite, name):
            continue  # the list of failures at the end repeats FAILED lines
        running = None
        t = {"name": name, "status": "RUN", "result": "COMPLETED"}
        if kind == "FAILED":
            t["failures"] = [{"failure": "failed (see tests.log; this run wrote no JSON)"}]
        if kind == "SKIPPED":
            t["result"] = "SKIPPED"
        tests[(suite, name)] = t
    if running is not None:
        tests[running] = {"name": running[1], "status": "RUN", "result": "COMPLETED", "failures": [
            {"failure": "still running when the binary was stopped (time limit or crash)"}]}
for c in culprits:
    suite, _, name = c.rpartition(".")
    tests[(suite, name)] = {"name": name, "status": "RUN", "result": "COMPLETED", "failures": [
        {"failure": "crashed the process or broke the CUDA context (see tests.log)"}]}
suites = {}
for (suite, name), t in tests.items():
    suites.setdefault(suite, []).append(t)
json.dump({"testsuites": [{"name": s, "testsuite": ts} for s, ts in suites.items()]},
          open(out, "w"), indent=1)
p = f = s = 0
failed = []
for (suite, name), t in sorted(tests.items()):
    if t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
        s += 1
    elif t.get("failures"):
        f += 1
        failed.append(suite + "." + name)
    else:
        p += 1
print(f"{p} passed, {f} failed, {s} skipped" + "".join("\n    FAILED " + n for n in failed))
EOF
)
    [[ -n "$counts" ]] || counts="(no gtest JSON: $(grep -c '\[       OK \]' "$log") OK lines in the log)"
    local note=""
    [[ $rc == 124 || $rc == 137 ]] && note=" TIMED OUT after $((TEST_TIMEOUT[$t] * scale)) s"
    ((${#culprits[@]} > 0)) && note="$note; reran without: ${culprits[*]}"
    echo "$t: rc $rc (last run)$note in $((SECONDS - t0)) s ($attempt run(s)): $counts" >> "$summary"
  done

  grep -m1 -o "SKIPPED: no CUDA device.*" "$log" | sed 's/^/tests: /' >> "$summary"

  local quick=()
  [[ "${HS_GPU_QUICK:-0}" == 1 ]] && quick=(--quick)
  local b0=$SECONDS rc
  timeout -k 5 "$((BENCH_TIMEOUT * scale))" "$work/bin/hs_gpu_bench" "${quick[@]}" \
    "${bench_extra[@]}" --json "$OUT/bench.json" --time_budget_s "$((BENCH_BUDGET * scale))" \
    > "$OUT/bench.log" 2>&1
  rc=$?
  {
    echo "hs_gpu_bench: rc $rc in $((SECONDS - b0)) s$([[ $rc == 124 || $rc == 137 ]] && echo " TIMED OUT")"
    grep -E "SKIPPED|ceilings|prefill|batch +32 context +8192|target|error" "$OUT/bench.log" | head -40
  } >> "$summary"

  if [[ -n "$(ls -A "$fail")" ]]; then
    tar -C "$work" -cJf "$OUT/fail.tar.xz" fail
    if [[ $(stat -c %s "$OUT/fail.tar.xz") -gt $((15 * 1024 * 1024)) ]]; then
      # Too big to come back: keep the metadata and the small tensors only.
      find "$fail" -name '*.bin' -size +1M -delete
      tar -C "$work" -cJf "$OUT/fail.tar.xz" fail
      echo "fail.tar.xz: tensors over 1 MiB left out (inputs are seeded: rerun the test)" >> "$summary"
    fi
    echo "failing inputs: fail.tar.xz ($(find "$fail" -name meta.json | wc -l) checks)" >> "$summary"
  fi
  echo "total: $((SECONDS - start)) s; tests $([[ $any_fail == 0 ]] && echo passed || echo FAILED)" \
    >> "$summary"
  rm -rf "$work"
  cat "$summary"
  [[ $any_fail == 0 ]]
}

case "$MODE" in
  prepare) prepare ;;
  run) run ;;
  *) die "usage: scripts/gpu_check.sh prepare|run" ;;
esac
