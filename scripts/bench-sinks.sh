#!/usr/bin/env bash
# Sink benchmark, release build, loopback only: a Kong file-log file of LINES lines
# → request records → one sink, timed until the sink has delivered every record:
#   - kafka → Tansu (in memory), per compression (none, lz4, zstd);
#   - clickhouse → the test ClickHouse (scripts/clickhouse.sh start), RowBinary and JSONEachRow.
# Then the per-record encodings alone (criterion).
# Prints records/s, tapline's CPU-seconds per million and its peak RSS.
# Usage: scripts/bench-sinks.sh [LINES]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-300000}
cargo build --release --quiet
work=$(mktemp -d)
pid= broker=
trap 'kill $pid $broker 2>/dev/null || true; rm -rf "$work"' EXIT
bin=target/release/tapline
source scripts/bench-lib.sh

kong_log "$work/access.log" "$lines"

# Run the pipeline with sink $1 until it has sent every record; print one line named $2.
measure() {
  export API_PORT=$(free_port) DATA_DIR="$work/data-$2" LOG_FILE="$work/access.log"
  start=$(date +%s.%N)
  $bin run --config benches/kong-file-log-sink.toml --config "benches/sinks/$1.toml" 2>"$work/tapline.log" & pid=$!
  until [ "$(sent 2>/dev/null || echo 0)" = "$lines" ]; do
    kill -0 $pid 2>/dev/null || { echo "tapline exited:"; tail "$work/tapline.log"; exit 1; }
    sleep 0.05
  done
  end=$(date +%s.%N)
  cpu=$(cpu_secs $pid); rss=$(peak_mib $pid)
  kill $pid; wait $pid || true
  awk -v name="$2" -v n="$lines" -v s="$start" -v e="$end" -v cpu="$cpu" -v rss="$rss" 'BEGIN {
    t = e - s; printf "%-24s %8d records in %5.1f s: %7.0f records/s, %5.2f CPU-s per million, peak RSS %.1f MiB\n", name, n, t, n / t, cpu / n * 1e6, rss }'
}

for codec in none lz4 zstd; do
  export KAFKA_PORT=$(free_port) KAFKA_COMPRESSION=$codec
  scripts/kafka.sh broker "$KAFKA_PORT" >"$work/broker.log" 2>&1 & broker=$!
  scripts/kafka.sh topic "$KAFKA_PORT" bench 3
  measure kafka "kafka $codec"
  kill $broker; wait $broker 2>/dev/null || true
done

scripts/clickhouse.sh start >/dev/null
export CLICKHOUSE_URL=http://127.0.0.1:${CLICKHOUSE_HTTP_PORT:-18123}
for format in row_binary json_each_row; do
  export CLICKHOUSE_DATABASE="tapline_bench_$format" CLICKHOUSE_FORMAT=$format
  curl -sf "$CLICKHOUSE_URL/" --data-binary "DROP DATABASE IF EXISTS $CLICKHOUSE_DATABASE"
  measure clickhouse "clickhouse $format"
  rows=$(curl -sf "$CLICKHOUSE_URL/" --data-binary "SELECT count() FROM $CLICKHOUSE_DATABASE.requests")
  [ "$rows" = "$lines" ] || echo "note: $rows rows in ClickHouse, not $lines"
  curl -sf "$CLICKHOUSE_URL/" --data-binary "DROP DATABASE $CLICKHOUSE_DATABASE"
done

cargo bench --quiet --bench hot_paths -- 'kafka/|clickhouse/' --warm-up-time 1 --measurement-time 3 2>/dev/null | grep -E "^(kafka|clickhouse)/|thrpt"
