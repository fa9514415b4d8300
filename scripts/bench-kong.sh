#!/usr/bin/env bash
# Kong ingest benchmark, release build, loopback only:
#   1. kong_http_log → blackhole under wrk (batches of 100 entries, as Kong's queue sends);
#   2. kong_file_log → blackhole over a file of LINES lines;
#   3. the bare typed parse of the same entry (criterion), for the ratio.
# Prints entries/s, CPU-seconds per million entries and peak RSS for each.
# Usage: scripts/bench-kong.sh [SECONDS] [LINES]      (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
lines=${2:-1000000}
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
bin=target/release/tapline
source scripts/bench-lib.sh

# 1. HTTP: a body of 100 entries, ids varied.
python3 - "$work/body.json" <<'PY'
import json, sys
entry = json.load(open("tests/fixtures/kong/kong3_single.json"))
batch = []
for i in range(100):
    e = json.loads(json.dumps(entry)); e["request"]["id"] = "%032x" % i; batch.append(e)
open(sys.argv[1], "w").write(json.dumps(batch))
PY
export API_PORT=$(free_port) HTTP_PORT=$(free_port)
$bin run --config benches/kong-http-log.toml 2>"$work/http.log" & pid=$!
until curl -s "127.0.0.1:$API_PORT/health" >/dev/null; do sleep 0.1; done
start=$(date +%s.%N)
BODY="$work/body.json" wrk -t1 -c4 -d"${seconds}s" -s benches/post.lua "http://127.0.0.1:$HTTP_PORT/" > "$work/wrk.txt"
end=$(date +%s.%N)
n=$(sent); cpu=$(cpu_secs $pid); rss=$(peak_mib $pid)
kill $pid; wait $pid || true
non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.txt"); [ -z "$non2xx" ] || echo "note: $non2xx answers were not 2xx (503 = backpressure)"
report kong_http_log "$n" "$(echo "$end - $start" | bc)" "$cpu" "$rss"

# 2. File: LINES lines of the same entry, one per line.
kong_log "$work/access.log" "$lines"
export API_PORT=$(free_port) DATA_DIR="$work/data" LOG_FILE="$work/access.log"
start=$(date +%s.%N)
$bin run --config benches/kong-file-log.toml 2>"$work/file.log" & pid=$!
until [ "$(sent 2>/dev/null || echo 0)" = "$lines" ]; do sleep 0.05; done
end=$(date +%s.%N)
cpu=$(cpu_secs $pid); rss=$(peak_mib $pid)
kill $pid; wait $pid || true
report kong_file_log "$lines" "$(echo "$end - $start" | bc)" "$cpu" "$rss"

# 3. The bare parse of the same entry into a typed struct, and the whole decode.
cargo bench --quiet --bench hot_paths -- kong/ --warm-up-time 1 --measurement-time 3 2>/dev/null | grep -E "^kong/|thrpt"
