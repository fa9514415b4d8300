#!/usr/bin/env bash
# OTLP ingest benchmark, release build, loopback only: the `opentelemetry`
# source → blackhole, loaded by examples/load.rs (requests of 100 spans
# shaped like Kong's, 8 in flight) over gRPC, then HTTP/protobuf. Prints
# spans/s, CPU-seconds per million spans and peak RSS of tapline; then the
# per-span decode and encode costs (criterion).
# Usage: scripts/bench-otlp.sh [SECONDS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
concurrency=${2:-8}
cargo build --release --quiet --bin tapline --example load
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
bin=target/release/tapline
load=target/release/examples/load
source scripts/bench-lib.sh

for protocol in grpc http; do
  export API_PORT=$(free_port) GRPC_PORT=$(free_port) HTTP_PORT=$(free_port)
  $bin run --config benches/otlp.toml 2>"$work/$protocol.log" & pid=$!
  until curl -s "127.0.0.1:$API_PORT/health" >/dev/null; do sleep 0.1; done
  port=$GRPC_PORT; [ "$protocol" = grpc ] || port=$HTTP_PORT
  $load "$protocol" "127.0.0.1:$port" "$seconds" "$concurrency" > "$work/load.txt"
  n=$(sent); cpu=$(cpu_secs $pid); rss=$(peak_mib $pid)
  kill $pid; wait $pid || true
  wall=$(sed -E 's/.*elapsed=([0-9.]+).*/\1/' "$work/load.txt")
  refused=$(sed -E 's/.*refused=([0-9]+).*/\1/' "$work/load.txt")
  awk -v p="$protocol" -v n="$n" -v wall="$wall" -v cpu="$cpu" -v rss="$rss" -v refused="$refused" 'BEGIN {
    printf "otlp %-4s %9d spans in %5.1f s: %8.0f spans/s, %5.2f CPU-s per million, peak RSS %.1f MiB (%d requests refused: backpressure)\n", p, n, wall, n / wall, cpu / n * 1e6, rss, refused }'
done

cargo bench --quiet --bench hot_paths -- otlp/ --warm-up-time 1 --measurement-time 3 2>/dev/null | grep -E "^otlp/|thrpt"
