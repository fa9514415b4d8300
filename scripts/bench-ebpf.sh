#!/usr/bin/env bash
# eBPF capture overhead, release build, as root. Two cases, each under wrk,
# first without capture, then with tapline's `ebpf` source (→ blackhole):
# - the microbenchmark: nginx (one worker) answering 200 "ok" itself, captured
#   at both ends (wrk's sockets and nginx's), then nginx's alone (pid filter);
# - the realistic case: nginx proxying (keep-alive upstream) to two Python
#   backends (scripts/http_backend.py) that spend WORK_US µs of CPU per
#   request, captured on all three ports.
# Prints the requests/s both ways and the loss, the records tapline made per
# second, its CPU per million records, peak RSS and ring buffer drops; with
# BPF_STATS=1, each kernel program's ns per call during a capture (measuring
# costs a little: the throughput figures of such a run are not comparable);
# then the user side's decode + pairing cost per event (criterion). With
# ROUNDS=N the two cases run N times, each capture against the run without
# it just before (the host's own rate drifts between runs), and the median
# loss of each capture is printed at the end.
# The control: after each microbenchmark capture, no capture but a process
# that only spins as much CPU as tapline used (in bursts every 10 ms, as its
# reader polls). wrk and nginx fill the cores, so any third process costs
# throughput, and on a small host far more than its share: the control tells
# that host's price of a busy neighbour from the capture's own cost.
# Usage: scripts/bench-ebpf.sh [SECONDS] [CONNECTIONS]
# Environment: TAPLINE_BIN (default: build ${CARGO_TARGET_DIR:-target}/release/tapline),
# WORK_US (default 1000), ROUNDS (default 1), KERNEL_HOOKS (the source's `kernel_hooks`: auto, sockets,
# syscalls), BPF_STATS (needs bpftool: apt-get install bpftool), SKIP_CRITERION.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-16}
work_us=${WORK_US:-1000}
rounds=${ROUNDS:-1}
bin=${TAPLINE_BIN:-${CARGO_TARGET_DIR:-target}/release/tapline}
[ -n "${TAPLINE_BIN:-}" ] || cargo build --release --quiet --bin tapline
work=$(mktemp -d)
pid=; nginx_pid=; spin_pid=; backend_pids=()
trap 'kill $pid $nginx_pid $spin_pid "${backend_pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
source scripts/bench-lib.sh

export NGINX_PORT=$(free_port) PROXY_PORT=$(free_port) API_PORT=$(free_port)
backend_ports=("$(free_port)" "$(free_port)")
for port in "${backend_ports[@]}"; do
  python3 scripts/http_backend.py "$port" --threaded 2>>"$work/backend.log" & backend_pids+=($!)
done
cat > "$work/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  server { listen 127.0.0.1:$NGINX_PORT; location / { return 200 "ok\n"; } }
  upstream backends {
    server 127.0.0.1:${backend_ports[0]}; server 127.0.0.1:${backend_ports[1]};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    location / { proxy_pass http://backends; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work" & nginx_pid=$!
until curl -sf "127.0.0.1:$NGINX_PORT/" >/dev/null && curl -sf "127.0.0.1:$PROXY_PORT/" >/dev/null; do sleep 0.1; done

# rps URL: requests/s wrk gets (non-2xx answers and socket errors make the run fail).
rps() {
  wrk -t 1 -c "$connections" -d "${seconds}s" "$1" >"$work/wrk.out"
  if grep -qE "Non-2xx|Socket errors" "$work/wrk.out"; then cat "$work/wrk.out" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' "$work/wrk.out"
}
captured() { curl -s "127.0.0.1:$API_PORT/metrics" | awk '/^tapline_component_received_events_total\{component_id="capture"/ {print $2}'; }
dropped() { curl -s "127.0.0.1:$API_PORT/metrics" | awk '/^tapline_component_discarded_events_total\{component_id="capture"/ {print $2}'; }
# The kernel programs' run time per call since `bpf_stats_enabled` was set.
bpf_stats() {
  bpftool -j prog show | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p.get("run_cnt") and p["name"] in ("sys_enter", "sys_exit", "sock_send_length", "sock_recv_length",
                                        "destroy_sock", "set_state", "retransmit", "send_reset", "receive_reset"):
        print("  %-14s %6.0f ns per call, %10d calls" % (p["name"], p["run_time_ns"] / p["run_cnt"], p["run_cnt"]))'
}

# start_capture: tapline capturing ports $CAPTURE_PORTS, pids $CAPTURE_PIDS; sets pid, and hooks (those it chose).
start_capture() {
  $bin run --config benches/ebpf.toml 2>"$work/tapline.log" & pid=$!
  until grep -q "eBPF capture started" "$work/tapline.log"; do kill -0 $pid; sleep 0.1; done
  hooks=$(grep -o 'hooks=[A-Za-z]*' "$work/tapline.log" | cut -d= -f2)
}
stop_capture() { kill $pid; wait $pid || true; pid=; }

# loss WITHOUT WITH: the % of requests/s lost.
loss() { awk -v without="$1" -v with="$2" 'BEGIN {print (without - with) / without * 100}'; }

# bench WHAT URL WITHOUT: one capture run under wrk on URL; its loss is added to losses[WHAT].
declare -A losses
bench() {
  [ -z "${BPF_STATS:-}" ] || sysctl -qw kernel.bpf_stats_enabled=1
  start_capture
  start_cpu=$(cpu_secs $pid); start_events=$(captured)
  with=$(rps "$2")
  sleep 2  # the last records leave the ring buffer and the sessions
  events=$(( $(captured) - start_events )); cpu=$(awk -v a="$(cpu_secs $pid)" -v b="$start_cpu" 'BEGIN {print a - b}')
  rss=$(peak_mib $pid); drops=$(dropped)
  [ -z "${BPF_STATS:-}" ] || { bpf_stats; sysctl -qw kernel.bpf_stats_enabled=0; }
  stop_capture
  cores=$(awk -v cpu="$cpu" -v s="$seconds" 'BEGIN {print cpu / s}')  # for the control
  lost=$(loss "$3" "$with"); losses[$1]+="$lost "
  awk -v what="$1 ($hooks)" -v lost="$lost" -v with="$with" -v events="$events" -v s="$seconds" -v cpu="$cpu" -v rss="$rss" -v drops="$drops" 'BEGIN {
    printf "capturing %-33s %9.0f requests/s (%.1f %% fewer); tapline %d events in %d s = %.0f/s, %.2f CPU-s per million, peak RSS %.1f MiB, %d ring buffer drops\n",
      what ":", with, lost, events, s, events / s, cpu / events * 1e6, rss, drops }'
}

# control WHAT URL WITHOUT CORES: no capture, a process spinning the CORES the capture
# WHAT used; its loss is added to losses["spinning as WHAT"].
control() {
  python3 -c '
import sys, time
busy, period = float(sys.argv[1]) * 0.01, 0.01
due = time.monotonic()
while True:
    start = time.monotonic()
    while time.monotonic() - start < busy:
        pass
    due += period
    time.sleep(max(0.0, due - time.monotonic()))' "$4" & spin_pid=$!
  local start_cpu with spun lost
  start_cpu=$(cpu_secs $spin_pid)
  with=$(rps "$2")
  spun=$(awk -v a="$(cpu_secs $spin_pid)" -v b="$start_cpu" -v s="$seconds" 'BEGIN {print (a - b) / s}')
  kill $spin_pid; wait $spin_pid 2>/dev/null || true; spin_pid=
  lost=$(loss "$3" "$with"); losses["spinning as $1"]+="$lost "
  awk -v what="the CPU of $1" -v cores="$spun" -v lost="$lost" -v with="$with" 'BEGIN {
    printf "no capture, spinning %-22s %9.0f requests/s (%.1f %% fewer); the spinner used %.2f cores\n",
      what ":", with, lost, cores }'
}

micro="http://127.0.0.1:$NGINX_PORT/bench"
proxied="http://127.0.0.1:$PROXY_PORT/work/$work_us"
rps "$micro" >/dev/null  # warm-up
rps "$proxied" >/dev/null  # warm-up: nginx opens its upstream connections
for round in $(seq "$rounds"); do
  [ "$rounds" = 1 ] || echo "round $round of $rounds"
  without=$(rps "$micro")
  printf "nginx without capture: %9.0f requests/s\n" "$without"
  # Both ends of each request (wrk's and nginx's sockets), then nginx's alone (pid filter).
  CAPTURE_PORTS=$NGINX_PORT CAPTURE_PIDS= bench "both ends" "$micro" "$without"
  control "both ends" "$micro" "$without" "$cores"
  CAPTURE_PORTS=$NGINX_PORT CAPTURE_PIDS=$nginx_pid bench "nginx only" "$micro" "$without"
  control "nginx only" "$micro" "$without" "$cores"

  without=$(rps "$proxied")
  printf "nginx → 2 backends (%d µs of CPU per request) without capture: %9.0f requests/s\n" "$work_us" "$without"
  CAPTURE_PORTS="$PROXY_PORT, ${backend_ports[0]}, ${backend_ports[1]}" CAPTURE_PIDS= bench "proxy, all 3 ports" "$proxied" "$without"
done
if [ "$rounds" != 1 ]; then
  for what in "both ends" "spinning as both ends" "nginx only" "spinning as nginx only" "proxy, all 3 ports"; do
    case $what in spinning*) label="no capture, $what" ;; *) label="capturing $what" ;; esac
    echo ${losses[$what]} | tr ' ' '\n' | sort -n | awk -v what="$label" -v n="$rounds" '{loss[NR] = $1; all = all sprintf(" %.1f", $1)}
      END {printf "median loss over %d rounds, %-35s %5.1f %% (sorted:%s)\n", n, what ":", NR % 2 ? loss[(NR + 1) / 2] : (loss[NR / 2] + loss[NR / 2 + 1]) / 2, all}'
  done
fi

dd_secs() { /usr/bin/time -f %e dd if=/dev/zero of=/dev/null bs=1 count=3000000 2>&1 | tail -1; }
dd_without=$(dd_secs)
CAPTURE_PORTS=1 CAPTURE_PIDS= start_capture
dd_with=$(dd_secs)
stop_capture
printf "dd, 6 M one-byte read and write calls: %.2f s without capture, %.2f s beside one (%s, port 1)\n" "$dd_without" "$dd_with" "$hooks"

[ -n "${SKIP_CRITERION:-}" ] ||
  cargo bench --offline --quiet --bench hot_paths -- ebpf/ --warm-up-time 1 --measurement-time 3 2>/dev/null | grep -E "^ebpf/|thrpt"
