#!/usr/bin/env bash
# ThreadSanitizer over the tests that do not go through gRPC: the engine loop
# (fake and real engines), the scheduler policy tests and the token streams.
#
# Debian's Abseil is not built with -fsanitize=thread, so TSan cannot see the
# happens-before edges of absl::Mutex (every hand-off would be reported as a
# race). This script builds the same Abseil — Debian's source package,
# 20220623.1-1+deb12u2, with Debian's patches (inline namespace, own
# string_view, ...), checked against pinned SHA-256 sums — with TSan into
# .deps/ (once; later runs reuse it), and links the TSan build against it.
# OpenMP stays uninstrumented, so the tests run their CPU ops on
# one thread (HS_TEST_CPU_THREADS=1).
#   scripts/tsan.sh [build-dir]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-tsan}
jobs=$(nproc)

version=20220623.1
debian_rev=1+deb12u2
pool=http://deb.debian.org/debian/pool/main/a/abseil
orig=abseil_${version}.orig.tar.gz
orig_sha=abfe2897f3a30edaa74bc34365afe3c2a3cd012091a97dc7e008f7016adcd5fe
deb=abseil_${version}-${debian_rev}.debian.tar.xz
deb_sha=e08490fc7b6f3beca1925953b0c4fb92df2de5e2a01295e4641e2a3d4e528eeb
deps=$root/.deps/absl-tsan-${version}-${debian_rev}

launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi

if [ ! -f "$deps/.done" ]; then
  echo "tsan: building Abseil $version-$debian_rev with ThreadSanitizer into $deps"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && curl -sSfO "$pool/$orig" && curl -sSfO "$pool/$deb")
  echo "$orig_sha  $work/$orig" | sha256sum -c --quiet
  echo "$deb_sha  $work/$deb" | sha256sum -c --quiet
  tar -xzf "$work/$orig" -C "$work"
  src=$(find "$work" -maxdepth 1 -type d -name 'abseil-*' | head -n1)
  tar -xJf "$work/$deb" -C "$src"
  while read -r patch; do
    [ -z "$patch" ] || [ "${patch#\#}" != "$patch" ] && continue
    patch -d "$src" -p1 --quiet < "$src/debian/patches/$patch"
  done < "$src/debian/patches/series"
  cmake -S "$src" -B "$work/build" -G Ninja "${launcher[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_TESTING=OFF -DABSL_PROPAGATE_CXX_STD=ON \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
    -DCMAKE_INSTALL_PREFIX="$deps" >/dev/null
  cmake --build "$work/build" -j "$jobs" >/dev/null
  cmake --install "$work/build" >/dev/null
  touch "$deps/.done"
fi

tests=(token_stream_test scheduler_policy_test engine_loop_test ssm_engine_loop_test)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHS_TSAN=ON \
  -Dabsl_DIR="$deps/lib/cmake/absl" >/dev/null
cmake --build "$build" -j "$jobs" --target "${tests[@]}"
# halt_on_error: the first report fails the test binary (and so the stage).
cd "$build"
HS_TEST_CPU_THREADS=1 OMP_NUM_THREADS=1 \
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=4 suppressions=$root/tests/tsan.supp" \
  ctest --output-on-failure -j "$jobs" --timeout 1800 \
  -R "$(printf '%s|' TokenStream SchedulerPolicy EngineLoop SsmEngineLoop | sed 's/|$//')"
