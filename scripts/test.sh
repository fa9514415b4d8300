#!/usr/bin/env bash
# Install what the tests need, start the services they use, check the style,
# run the whole suite. Safe to run again: installed tools are reused.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
scripts/clickhouse.sh start

# Style first: the cheapest checks, and CI refuses what they refuse.
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings

cargo test --locked --all-targets
# The image, the chart, the manifests and the systemd unit (docs/deploying.md).
scripts/test-deploy.sh
