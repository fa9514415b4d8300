#!/usr/bin/env bash
# Build tapline (installing the Debian build packages if one is missing) and run
# it: with no arguments, on the embedded default pipeline (config/examples/quickstart.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-build-deps.sh
exec cargo run --release -- run "$@"
