#!/usr/bin/env bash
# Remote write ingest benchmark, release build, loopback only: the
# `prometheus_remote_write` source → blackhole, loaded by examples/load.rs
# (requests of 1000 samples shaped like Kong's request counters, 9 labels,
# snappy, 4 in flight). Prints samples/s, CPU-seconds per million samples and
# peak RSS of tapline.
# Usage: scripts/bench-prometheus.sh [SECONDS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
concurrency=${2:-4}
cargo build --release --quiet --bin tapline --example load
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
bin=target/release/tapline
source scripts/bench-lib.sh

export API_PORT=$(free_port) HTTP_PORT=$(free_port)
$bin run --config benches/prometheus.toml 2>"$work/tapline.log" & pid=$!
until curl -s "127.0.0.1:$API_PORT/health" >/dev/null; do sleep 0.1; done
target/release/examples/load remote-write "127.0.0.1:$HTTP_PORT" "$seconds" "$concurrency" 1000 > "$work/load.txt"
n=$(sent); cpu=$(cpu_secs $pid); rss=$(peak_mib $pid)
kill $pid; wait $pid || true
wall=$(sed -E 's/.*elapsed=([0-9.]+).*/\1/' "$work/load.txt")
refused=$(sed -E 's/.*refused=([0-9]+).*/\1/' "$work/load.txt")
bytes=$(sed -E 's/.*bytes_per_request=([0-9]+).*/\1/' "$work/load.txt")
awk -v n="$n" -v wall="$wall" -v cpu="$cpu" -v rss="$rss" -v refused="$refused" -v bytes="$bytes" 'BEGIN {
  printf "remote write %9d samples in %5.1f s: %8.0f samples/s, %5.2f CPU-s per million, peak RSS %.1f MiB (%d B per request of 1000, %d refused: backpressure)\n", n, wall, n / wall, cpu / n * 1e6, rss, bytes, refused }'
