#!/usr/bin/env bash
# Install what the tests need, start the services they use, run the whole suite.
# Safe to run again: installed tools are reused.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
scripts/clickhouse.sh start

cargo test --locked --all-targets
