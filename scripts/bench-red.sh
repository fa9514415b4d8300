#!/usr/bin/env bash
# red and enrich benchmark, release build: LINES Kong log lines spread over 10 000
# (service, route) pairs, read by kong_file_log, through
#   1. nothing (the baseline: kong_file_log → blackhole),
#   2. red (10 000 series) → blackhole,
#   3. enrich (a 10 000-row table by service, a 1 000-prefix CIDR table) → blackhole;
# then the transforms alone (criterion). Prints entries/s, CPU-seconds per million
# entries and peak RSS for each run: the difference to the baseline is the transform's.
# Usage: scripts/bench-red.sh [LINES]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
bin=target/release/tapline
source scripts/bench-lib.sh

python3 - "$work" "$lines" <<'PY'
import json, sys
work, lines = sys.argv[1], int(sys.argv[2])
entry = json.load(open("tests/fixtures/kong/kong3_single.json"))
with open(work + "/access.log", "w") as f:
    for i in range(lines):
        s = i % 10000
        entry["request"]["id"] = "%032x" % i
        entry["service"]["name"] = "service-%d" % (s % 100)
        entry["route"]["name"] = "route-%d" % (s // 100)
        entry["response"]["status"] = 503 if i % 20 == 0 else 200
        entry["latencies"]["request"] = 5 + (i * 7919) % 2000
        entry["tries"] = [{"ip": "10.%d.%d.%d" % (i % 120, (i * 31) % 256, i % 250), "port": 8080}]
        f.write(json.dumps(entry, separators=(",", ":")) + "\n")
with open(work + "/services.csv", "w") as f:
    f.write("service,team,tier\n")
    for i in range(10000):
        f.write("service-%d,team-%d,%d\n" % (i, i % 50, i % 3))
with open(work + "/networks.csv", "w") as f:
    f.write("cidr,zone\n")
    for i in range(100):
        f.write("10.%d.0.0/16,zone-%d\n" % (i, i))
    for i in range(900):
        f.write("10.%d.%d.0/24,rack-%d\n" % (i // 9, i % 256, i))
PY

run() { # name config component
  rm -rf "$work/data"
  export API_PORT=$(free_port) DATA_DIR="$work/data" LOG_FILE="$work/access.log" TABLES="$work"
  start_run "$1" "$2" "$3"
  stop_run "$1"
}
run "kong_file_log alone" benches/kong-file-log.toml out
run "red, 10k series" benches/red.toml red
run "enrich, 10k rows + 1k" benches/enrich.toml out

cargo bench --quiet --bench hot_paths -- "red/|enrich/" --warm-up-time 1 --measurement-time 5 2>/dev/null | grep -E "^(red|enrich)/|thrpt"
