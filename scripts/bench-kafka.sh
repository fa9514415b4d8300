#!/usr/bin/env bash
# Kafka sink benchmark, release build, loopback only: a Kong file-log file of LINES
# lines → request records → kafka sink → Tansu (in memory), for each compression,
# timed until every delivery report is back. Then the JSON encoding alone (criterion).
# Prints messages/s, tapline's CPU-seconds per million and peak RSS, and Tansu's CPU.
# Usage: scripts/bench-kafka.sh [LINES] [COMPRESSION...]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-300000}
shift || true
codecs=("${@:-none}")
[ $# -gt 0 ] || codecs=(none lz4 zstd)
cargo build --release --quiet
work=$(mktemp -d)
pid= broker=
trap 'kill $pid $broker 2>/dev/null || true; rm -rf "$work"' EXIT
bin=target/release/tapline
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sent() { curl -s "127.0.0.1:$API_PORT/metrics" | awk -F' ' '/^tapline_component_sent_events_total\{component_id="out"/ {print $2}'; }
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
peak_mib() { awk '/VmHWM/ {print $2 / 1024}' "/proc/$1/status"; }

python3 - "$work/access.log" "$lines" <<'PY'
import json, sys
entry = json.load(open("tests/fixtures/kong/kong3_single.json"))
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        entry["request"]["id"] = "%032x" % i
        f.write(json.dumps(entry, separators=(",", ":")) + "\n")
PY
for codec in "${codecs[@]}"; do
  export KAFKA_PORT=$(free_port) API_PORT=$(free_port) DATA_DIR="$work/data-$codec" LOG_FILE="$work/access.log" KAFKA_COMPRESSION=$codec
  scripts/kafka.sh broker "$KAFKA_PORT" >"$work/broker.log" 2>&1 & broker=$!
  scripts/kafka.sh topic "$KAFKA_PORT" bench 3
  start=$(date +%s.%N)
  $bin run --config benches/kong-file-log-kafka.toml 2>"$work/tapline.log" & pid=$!
  until [ "$(sent 2>/dev/null || echo 0)" = "$lines" ]; do
    kill -0 $pid 2>/dev/null || { echo "tapline exited:"; tail "$work/tapline.log"; exit 1; }
    sleep 0.05
  done
  end=$(date +%s.%N)
  cpu=$(cpu_secs $pid); rss=$(peak_mib $pid); broker_cpu=$(cpu_secs "$(pgrep -P $broker tansu || echo $broker)")
  kill $pid; wait $pid || true
  kill $broker; wait $broker 2>/dev/null || true
  awk -v c="$codec" -v n="$lines" -v s="$start" -v e="$end" -v cpu="$cpu" -v rss="$rss" -v b="$broker_cpu" 'BEGIN {
    t = e - s; printf "kafka %-7s %8d messages in %5.1f s: %7.0f messages/s, %5.2f CPU-s per million, peak RSS %.1f MiB (broker: %.1f CPU-s)\n", c, n, t, n / t, cpu / n * 1e6, rss, b }'
done

cargo bench --quiet --bench hot_paths -- kafka/ --warm-up-time 1 --measurement-time 3 2>/dev/null | grep -E "^kafka/|thrpt"
