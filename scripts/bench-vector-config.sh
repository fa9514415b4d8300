#!/usr/bin/env bash
# The cost of a Vector config for Kong forwarding run by tapline (issue 19's load):
# Kong http-log batches of 100 entries posted by 8 connections (wrk) → http_server
# (json) → remap normalizing 17 fields → blackhole. Prints entries/s, CPU-seconds per
# million entries and peak RSS.
#
# This machine's speed swings by 2× from minute to minute, so what is compared runs at
# the same time, each under its own 8 connections: BEFORE=/path/to/an/older/tapline
# and VECTOR=/path/to/vector (the same config; its [api] table left out) run beside
# this build when set; TAPLINE_BIN=/path/to/tapline runs that binary instead of
# building this tree (swap it with BEFORE to check that the two ports are alike).
# Usage: scripts/bench-vector-config.sh [SECONDS]      (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
tapline=${TAPLINE_BIN:-target/release/tapline}
[ -n "${TAPLINE_BIN:-}" ] || cargo build --release --quiet
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
source scripts/bench-lib.sh

python3 - "$work/body.json" <<'PY'
import json, sys
entry = json.load(open("tests/fixtures/kong/kong3_single.json"))
batch = []
for i in range(100):
    e = json.loads(json.dumps(entry)); e["request"]["id"] = "%032x" % i; batch.append(e)
open(sys.argv[1], "w").write(json.dumps(batch))
PY
# start NAME COMMAND…: one pipeline on its own port, up and listening. Its config is
# written with the ports in (Vector may not interpolate); Vector's without [api].
names=()
start() {
  local name=$1; shift
  local http; http=$(free_port)
  sed -e "s/\${HTTP_PORT}/$http/; s/\${API_PORT}/$(free_port)/" benches/vector-kong-http.toml > "$work/$name.toml"
  [ "$name" != vector ] || sed -i '/^\[api\]/,/^$/d' "$work/$name.toml"
  "$@" --config "$work/$name.toml" 2>"$work/$name.log" &
  pids+=($!); names+=("$name"); echo "$http" > "$work/$name.port"
  until curl -s -o /dev/null "127.0.0.1:$http/"; do sleep 0.1; done
}
start tapline "$tapline" run
[ -z "${BEFORE:-}" ] || start before "$BEFORE" run
[ -z "${VECTOR:-}" ] || start vector "$VECTOR"

# The same load on each, at the same time; entries are counted from wrk's 2xx answers.
start_time=$(date +%s.%N)
loads=()
for name in "${names[@]}"; do
  BODY="$work/body.json" wrk -t1 -c8 -d"${seconds}s" -s benches/post.lua "http://127.0.0.1:$(cat "$work/$name.port")/" > "$work/$name.wrk" &
  loads+=($!)
done
wait "${loads[@]}"
wall=$(echo "$(date +%s.%N) - $start_time" | bc)
for i in "${!names[@]}"; do
  name=${names[$i]}; pid=${pids[$i]}
  requests=$(awk '/requests in/ {print $1}' "$work/$name.wrk")
  refused=$(awk '/Non-2xx/ {print $NF}' "$work/$name.wrk"); refused=${refused:-0}
  cpu=$(cpu_secs "$pid"); rss=$(peak_mib "$pid")
  [ "$refused" = 0 ] || echo "note: $name refused $refused of $requests requests (not counted)"
  report "$name" "$(( (requests - refused) * 100 ))" "$wall" "$cpu" "$rss"
done
