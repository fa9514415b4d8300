#!/usr/bin/env bash
# stitch benchmark, release build: LINES Kong entries (each its own trace: a
# gateway span and its call upstream, two records' worth of spans), read by
# kong_file_log, through
#   1. nothing (the baseline: kong_file_log → blackhole),
#   2. stitch with 10 000 traces open (past that the longest-idle goes out),
#   3. stitch holding every entry (nothing goes out until the end): peak memory
#      less the baseline's, per held entry;
# then the transform alone (criterion, eBPF-shaped records, 10 000 traces open).
# Usage: scripts/bench-stitch.sh [LINES]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
bin=target/release/tapline
source scripts/bench-lib.sh
gauge() { curl -s "127.0.0.1:$API_PORT/metrics" | awk -F' ' -v name="$1" '$0 ~ "^tapline_" name "\\{" {print $2}'; }

# Every entry its own request: its own request id, W3C trace id and caller span; ten per millisecond.
python3 - "$work/access.log" "$lines" <<'PY'
import json, sys
entry = json.load(open("tests/fixtures/kong/kong3_single.json"))
start = entry["started_at"]
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        entry["request"]["id"] = "%032x" % i
        entry["trace_id"]["w3c"] = "%032x" % (i + 1)
        entry["request"]["headers"]["traceparent"] = "00-%032x-%016x-01" % (i + 1, i + 1)
        entry["started_at"] = start + i // 10
        f.write(json.dumps(entry, separators=(",", ":")) + "\n")
PY

run() { # name config component max_traces expire_ms
  rm -rf "$work/data"
  export API_PORT=$(free_port) DATA_DIR="$work/data" LOG_FILE="$work/access.log" MAX_TRACES=$4 EXPIRE_MS=$5
  start_run "$1" "$2" "$3"
  held=$(gauge stitch_spans_held || true) now=$(rss_mib $pid)
  stop_run "$1"
}
run "kong_file_log alone" benches/kong-file-log.toml out 1 1
baseline=$rss baseline_now=$now
run "stitch, 10k open" benches/stitch.toml stitch 10000 10000
run "stitch, all held" benches/stitch.toml stitch $((lines + 1)) 600000
# Resident once all are held, and the peak on the way (it adds the tables'
# growth: a table that doubles is briefly there twice).
awk -v now="$now" -v base="$baseline_now" -v rss="$rss" -v peak_base="$baseline" -v n="$lines" -v held="$held" 'BEGIN {
  printf "held: %d spans of %d entries; resident %.0f bytes per entry (%.0f per span) above the baseline, peak %.0f per entry\n",
    held, n, (now - base) * 1048576 / n, (now - base) * 1048576 / held, (rss - peak_base) * 1048576 / n }'

cargo bench --quiet --bench hot_paths -- "stitch/" --warm-up-time 1 --measurement-time 5 2>&1 | grep -E "^stitch|thrpt|bytes resident"
