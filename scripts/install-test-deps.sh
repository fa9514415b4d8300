#!/usr/bin/env bash
# Debian packages the build and the tests use. apt runs only when one is missing.
set -euo pipefail

packages=(ca-certificates clickhouse-client clickhouse-server curl openssl pkg-config procps time)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# chdb: the current ClickHouse engine in-process, to check DDL and rows against it too.
if ! python3 -c 'import chdb' 2>/dev/null; then
  echo "installing: chdb (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check chdb
fi

if ! command -v cargo >/dev/null; then
  echo "error: cargo is not on the PATH; tapline needs a Rust toolchain (1.95 or newer)" >&2
  exit 1
fi
