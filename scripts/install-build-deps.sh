#!/usr/bin/env bash
# Debian packages the build needs (librdkafka is compiled from source by the
# rdkafka crate: a C toolchain, make, OpenSSL and zlib headers; the eBPF
# programs are compiled by clang against libbpf's headers), and any more
# given as arguments. apt runs only when one is missing.
#   scripts/install-build-deps.sh [PACKAGE...]
set -euo pipefail

packages=(ca-certificates g++ make libssl-dev zlib1g-dev pkg-config clang libbpf-dev "$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "error: cargo is not on the PATH; tapline needs a Rust toolchain (1.95 or newer)" >&2
  exit 1
fi
