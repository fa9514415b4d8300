#!/usr/bin/env bash
# Start (or stop) a ClickHouse server for the tests, on loopback only, with its
# state under $CLICKHOUSE_DIR. Uses Debian's clickhouse-server (18.16), installed
# by scripts/install-test-deps.sh. HTTP port: $CLICKHOUSE_HTTP_PORT (18123);
# HTTPS port: $CLICKHOUSE_HTTPS_PORT (18443), with a self-signed certificate for
# 127.0.0.1 in $CLICKHOUSE_DIR/server.crt (the tests trust it as a CA file).
#   scripts/clickhouse.sh start | stop
set -euo pipefail
dir=${CLICKHOUSE_DIR:-/tmp/tapline-clickhouse}
http_port=${CLICKHOUSE_HTTP_PORT:-18123}
tcp_port=${CLICKHOUSE_TCP_PORT:-19000}
https_port=${CLICKHOUSE_HTTPS_PORT:-18443}
case "${1:-start}" in
  start)
    if curl -sf "http://127.0.0.1:$http_port/ping" >/dev/null 2>&1; then
      echo "clickhouse: already running on 127.0.0.1:$http_port"; exit 0
    fi
    mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log}
    if [ ! -s "$dir/server.crt" ]; then
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
        -keyout "$dir/server.key" -out "$dir/server.crt" 2>/dev/null
    fi
    # The packaged config, moved to loopback ports and our own directories.
    sed -e "s#<http_port>8123</http_port>#<http_port>$http_port</http_port>#" \
        -e "s#<tcp_port>9000</tcp_port>#<tcp_port>$tcp_port</tcp_port><https_port>$https_port</https_port>#" \
        -e "\#<https_port>8443</https_port>#d" \
        -e "s#/etc/clickhouse-server/server.crt#$dir/server.crt#" \
        -e "s#/etc/clickhouse-server/server.key#$dir/server.key#" \
        -e "\#<dhParamsFile>#d" \
        -e "s#<interserver_http_port>9009</interserver_http_port>##" \
        -e "s#<listen_host>::1</listen_host>##" \
        -e "s#/var/lib/clickhouse/tmp/#$dir/tmp/#" \
        -e "s#/var/lib/clickhouse/user_files/#$dir/user_files/#" \
        -e "s#/var/lib/clickhouse/format_schemas/#$dir/format_schemas/#" \
        -e "s#/var/lib/clickhouse/#$dir/data/#" \
        -e "s#/var/log/clickhouse-server/#$dir/log/#g" \
        -e "s#<users_config>users.xml</users_config>#<users_config>/etc/clickhouse-server/users.xml</users_config>#" \
        /etc/clickhouse-server/config.xml > "$dir/config.xml"
    clickhouse-server --config-file="$dir/config.xml" --pid-file="$dir/clickhouse.pid" --daemon
    for _ in $(seq 1 100); do
      if curl -sf "http://127.0.0.1:$http_port/ping" >/dev/null 2>&1; then
        echo "clickhouse: $(curl -s "http://127.0.0.1:$http_port/?query=SELECT%20version()") on 127.0.0.1:$http_port"; exit 0
      fi
      sleep 0.2
    done
    echo "clickhouse: did not start; see $dir/log/" >&2; tail -20 "$dir/log/clickhouse-server.err.log" >&2 || true; exit 1
    ;;
  stop)
    # Wait for the process to end: while shutting down it still serves open connections.
    if [ -f "$dir/clickhouse.pid" ] && pid=$(cat "$dir/clickhouse.pid") && kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    ;;
esac
