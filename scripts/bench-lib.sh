# Helpers the bench scripts source: ports, tapline's counters, a process's CPU and memory.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Events the component `out` has sent, from the admin API on $API_PORT.
sent() { curl -s "127.0.0.1:$API_PORT/metrics" | awk -F' ' '/^tapline_component_sent_events_total\{component_id="out"/ {print $2}'; }
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
peak_mib() { awk '/VmHWM/ {print $2 / 1024}' "/proc/$1/status"; }
rss_mib() { awk '/VmRSS/ {print $2 / 1024}' "/proc/$1/status"; }
# kong_log FILE LINES: a Kong file-log file of LINES copies of the 3.x fixture, request ids varied.
kong_log() {
  python3 - "$1" "$2" <<'PY'
import json, sys
entry = json.load(open("tests/fixtures/kong/kong3_single.json"))
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        entry["request"]["id"] = "%032x" % i
        f.write(json.dumps(entry, separators=(",", ":")) + "\n")
PY
}
# Events component $1 has received, from the admin API on $API_PORT.
received() { curl -s "127.0.0.1:$API_PORT/metrics" | awk -F' ' -v id="$1" '$0 ~ "^tapline_component_received_events_total\\{component_id=\"" id "\"" {print $2}'; }
# start_run NAME CONFIG COMPONENT: $bin on CONFIG (stderr in $work/NAME.log) until COMPONENT
# has received $lines events; sets pid (still running), wall, cpu and rss.
start_run() {
  local start
  start=$(date +%s.%N)
  $bin run --config "$2" 2>"$work/$1.log" & pid=$!
  until [ "$(received "$3" 2>/dev/null || echo 0)" = "$lines" ]; do sleep 0.05; done
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  cpu=$(cpu_secs $pid); rss=$(peak_mib $pid)
}
# stop_run NAME: stop what start_run started and report it.
stop_run() {
  kill $pid; wait $pid || true
  report "$1" "$lines" "$wall" "$cpu" "$rss"
}
# report NAME ENTRIES WALL CPU RSS: one line of rate, CPU-seconds per million and peak memory.
report() {
  awk -v name="$1" -v n="$2" -v wall="$3" -v cpu="$4" -v rss="$5" 'BEGIN {
    printf "%-22s %9d entries in %5.1f s: %8.0f entries/s, %5.2f CPU-s per million, peak RSS %.1f MiB\n", name, n, wall, n / wall, cpu / n * 1e6, rss }'
}
