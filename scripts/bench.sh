#!/usr/bin/env bash
# End-to-end engine benchmark: demo → remap → blackhole, in release mode.
# Prints events/s and peak RSS. Usage: scripts/bench.sh [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-2000000}
cargo build --release --quiet
log=$(mktemp)
start=$(date +%s.%N)
COUNT=$count /usr/bin/time -v target/release/tapline run --config benches/demo-remap-blackhole.toml 2> "$log" >/dev/null
end=$(date +%s.%N)
grep -q "component_sent_events_total=$count" "$log" || { echo "not every event reached the blackhole:"; grep totals "$log"; exit 1; }
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
cpu=$(awk -F': ' '/Percent of CPU/ {print $2}' "$log")
awk -v n="$count" -v s="$start" -v e="$end" -v rss="$rss_kb" -v cpu="$cpu" \
  'BEGIN { t = e - s; printf "%d events in %.2f s: %.0f events/s, peak RSS %.1f MiB, CPU %s\n", n, t, n / t, rss / 1024, cpu }'
rm -f "$log"
