#!/usr/bin/env bash
# Copies every shared library the given binaries load (as `ldd` resolves them)
# into DEST, except those the runtime image provides itself: glibc (the C
# library, the dynamic loader and their companions), and the CUDA driver and
# toolkit libraries (the driver comes from the host through the NVIDIA container
# runtime, the toolkit libraries from the nvidia/cuda runtime image). The
# Dockerfile's build stage runs this, the runtime stage copies DEST and puts it
# on LD_LIBRARY_PATH; tests/deploy/dockerfile_test.py runs it on the local build
# and starts the binaries in a root folder that holds only glibc and DEST.
#
#   deploy/docker/bundle_libs.sh DEST BINARY...
#
# Fails (exit 1) when ldd cannot resolve a library. Prints each copied file.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 DEST BINARY..." >&2
  exit 2
fi
dest=$1
shift
mkdir -p "$dest"

# Provided by the runtime image or the host, never bundled.
provided='^(linux-vdso|linux-gate|ld-linux[-a-z0-9_]*|libc|libm|libmvec|libdl|libpthread|librt|libresolv|libutil|libanl|libnsl|libnss_[a-z]+|libBrokenLocale|libcuda|libnvidia-[a-z0-9-]+|libcudart|libcublas|libcublasLt|libcufft|libcurand|libcusolver|libcusparse|libnvrtc|libnvJitLink|libnpp[a-z]*|libnvToolsExt)\.so'

for bin in "$@"; do
  out=$(ldd "$bin")
  if grep -q 'not found' <<<"$out"; then
    echo "$bin: ldd cannot resolve:" >&2
    grep 'not found' <<<"$out" >&2
    exit 1
  fi
  # Lines look like "libfoo.so.1 => /path/libfoo.so.1 (0x...)".
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    name=${name##*/}
    if [[ $name =~ $provided ]]; then continue; fi
    if [ ! -e "$dest/$name" ]; then
      cp -L "$path" "$dest/$name"
      echo "$dest/$name"
    fi
  done <<<"$out"
done
