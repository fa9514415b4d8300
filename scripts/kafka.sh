#!/usr/bin/env bash
# A Kafka-compatible broker for the tests: Tansu, in memory, on loopback.
# Installed once into ~/.cargo/bin by scripts/install-test-deps.sh.
#   scripts/kafka.sh broker PORT [ADVERTISED_PORT]
#                                         run a broker in the foreground (tests spawn this)
#   scripts/kafka.sh topic PORT NAME [P]  create topic NAME with P partitions (default 1)
#   scripts/kafka.sh start | stop         a broker in the background on $KAFKA_PORT (19092)
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
dir=${KAFKA_DIR:-/tmp/tapline-kafka}
case "${1:-start}" in
  broker)
    port=$2 advertised=${3:-$2}
    exec tansu broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$advertised" \
      --storage-engine memory://tansu/
    ;;
  topic)
    port=$2 name=$3 partitions=${4:-1}
    # The broker may still be binding its port: try for a few seconds.
    for _ in $(seq 1 50); do
      if out=$(tansu topic create "$name" --partitions "$partitions" --broker "tcp://127.0.0.1:$port" 2>&1); then exit 0; fi
      sleep 0.1
    done
    echo "kafka: cannot create topic $name on 127.0.0.1:$port: $out" >&2; exit 1
    ;;
  start)
    port=${KAFKA_PORT:-19092}
    mkdir -p "$dir"
    nohup "$0" broker "$port" >"$dir/broker.log" 2>&1 &
    echo $! >"$dir/broker.pid"
    echo "kafka: tansu on 127.0.0.1:$port (log $dir/broker.log)"
    ;;
  stop)
    [ -f "$dir/broker.pid" ] && kill "$(cat "$dir/broker.pid")" 2>/dev/null || true
    ;;
  *)
    echo "usage: $0 broker PORT [ADVERTISED_PORT] | topic PORT NAME [PARTITIONS] | start | stop" >&2; exit 2
    ;;
esac
