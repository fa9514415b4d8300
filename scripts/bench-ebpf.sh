#!/usr/bin/env bash
# eBPF capture overhead, release build, as root: nginx (one worker, answering
# 200 "ok" itself) under wrk, first without capture, then with tapline's
# `ebpf` source watching nginx's port (→ blackhole). Prints nginx's requests/s
# both ways and the loss, the records tapline made per second, its CPU per
# million records, peak RSS and ring buffer drops; then the user side's
# decode + pairing cost per event (criterion).
# Usage: scripts/bench-ebpf.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-16}
cargo build --release --quiet --bin tapline
work=$(mktemp -d)
pid=; nginx_pid=
trap 'kill $pid $nginx_pid 2>/dev/null || true; rm -rf "$work"' EXIT
bin=target/release/tapline
source scripts/bench-lib.sh

export NGINX_PORT=$(free_port) API_PORT=$(free_port)
cat > "$work/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  server { listen 127.0.0.1:$NGINX_PORT; location / { return 200 "ok\n"; } }
}
CONF
nginx -c "$work/nginx.conf" -p "$work" & nginx_pid=$!
until curl -s "127.0.0.1:$NGINX_PORT/" >/dev/null; do sleep 0.1; done

rps() { wrk -t 1 -c "$connections" -d "${seconds}s" "http://127.0.0.1:$NGINX_PORT/bench" | awk '/Requests\/sec/ {print $2}'; }
captured() { curl -s "127.0.0.1:$API_PORT/metrics" | awk '/^tapline_component_received_events_total\{component_id="capture"/ {print $2}'; }
dropped() { curl -s "127.0.0.1:$API_PORT/metrics" | awk '/^tapline_component_discarded_events_total\{component_id="capture"/ {print $2}'; }

rps >/dev/null  # warm-up
without=$(rps)
printf "nginx without capture: %9.0f requests/s\n" "$without"
# Both ends of each request (wrk's and nginx's sockets), then nginx's alone (pid filter).
for pids in "" "$nginx_pid"; do
  export CAPTURE_PIDS=$pids
  $bin run --config benches/ebpf.toml 2>"$work/tapline.log" & pid=$!
  until grep -q "eBPF capture started" "$work/tapline.log"; do kill -0 $pid; sleep 0.1; done
  start_cpu=$(cpu_secs $pid); start_events=$(captured)
  with=$(rps)
  sleep 2  # the last records leave the ring buffer and the sessions
  events=$(( $(captured) - start_events )); cpu=$(awk -v a="$(cpu_secs $pid)" -v b="$start_cpu" 'BEGIN {print a - b}')
  rss=$(peak_mib $pid); drops=$(dropped)
  kill $pid; wait $pid || true; pid=
  awk -v what="${pids:+nginx only}" -v without="$without" -v with="$with" -v events="$events" -v s="$seconds" -v cpu="$cpu" -v rss="$rss" -v drops="$drops" 'BEGIN {
    printf "capturing %-10s nginx %9.0f requests/s (%.1f %% fewer); tapline %d events in %d s = %.0f/s, %.2f CPU-s per million, peak RSS %.1f MiB, %d ring buffer drops\n",
      (what == "" ? "both ends:" : what ":"), with, (without - with) / without * 100, events, s, events / s, cpu / events * 1e6, rss, drops }'
done

cargo bench --quiet --bench hot_paths -- ebpf/ --warm-up-time 1 --measurement-time 3 2>/dev/null | grep -E "^ebpf/|thrpt"
