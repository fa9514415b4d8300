#!/usr/bin/env bash
# The deployment, tested here where there is no container daemon and no cluster
# (run by scripts/test.sh, so by CI):
#   1. the Helm chart: lint, and every role rendered with and without options,
#      each rendering checked against the Kubernetes schemas (kubernetes-validate
#      --strict) and its pipeline by `tapline validate`; the plain manifests in
#      deploy/kubernetes are the default renderings, unchanged;
#   2. the systemd unit passes `systemd-analyze verify`, with nothing to say;
#   3. the image (scripts/build-image.sh: static binary, buildah) runs under
#      podman as the DaemonSet runs it (host network and pids, only the eBPF
#      capabilities, the host's BTF read-only): `tapline validate` passes inside,
#      and the agent's own pipeline sees a curl on the host; its spans, and a Kong
#      entry given to the sidecar's pipeline (run by the static binary), reach
#      ClickHouse through the aggregator's pipeline.
# Needs ClickHouse on 127.0.0.1:18123 (scripts/clickhouse.sh start), root, and
# the tools scripts/install-test-deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/container-lib.sh
source scripts/bench-lib.sh
chart=deploy/helm/tapline
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "${PODMAN[@]}" rm -f tapline-agent-test >/dev/null 2>&1 || true
  [ -n "${KEEP_WORK:-}" ] && echo "kept: $work" || rm -rf "$work"
}
trap cleanup EXIT
"${PODMAN[@]}" rm -f tapline-agent-test >/dev/null 2>&1 || true # left by a run that was killed
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

step "chart: helm lint"
for role in agent aggregator sidecar-example; do
  helm lint --strict "$chart" --set role=$role >/dev/null || fail "helm lint --strict, role $role"
done

# Each role with its defaults, then with options: a pipeline of the user's (customConfig),
# ConfigMaps of the user's, a ServiceMonitor, persistence, scheduling and no RBAC.
options_custom=(--set-json 'customConfig={"sources":{"in":{"type":"demo"}},"sinks":{"out":{"type":"blackhole","inputs":["in"]}}}')
options_full=(--set serviceMonitor.enabled=true --set service.enabled=true --set persistence.enabled=true
  --set rbac.create=false --set serviceAccount.create=false --set serviceAccount.name=observability
  --set aggregatorAddress=http://tapline-aggregator.observability:4317
  --set-json 'tolerations=[{"operator":"Exists"}]' --set-json 'nodeSelector={"kubernetes.io/os":"linux"}'
  --set-json 'env=[{"name":"CLICKHOUSE_ENDPOINT","value":"http://clickhouse:8123"}]'
  --set-json 'podSecurityContext={"fsGroup":65532}' --set-json 'extraVolumes=[{"name":"tables","configMap":{"name":"tables"}}]'
  --set-json 'extraVolumeMounts=[{"name":"tables","mountPath":"/etc/tapline-tables"}]')
options_existing=(--set-json 'existingConfigMaps=["pipeline-a","pipeline-b"]')
for role in agent aggregator sidecar-example; do
  for variant in default custom full existing; do
    out="$work/$role-$variant.yaml"
    case $variant in
      default) args=() ;;
      custom) args=("${options_custom[@]}") ;;
      full) args=("${options_full[@]}") ;;
      existing) args=("${options_existing[@]}") ;;
    esac
    helm template tapline "$chart" --namespace observability --set role=$role "${args[@]}" >"$out" || fail "helm template $role $variant"
    # The ServiceMonitor is a CRD the Kubernetes schemas do not hold: checked for its fields below.
    python3 - "$out" "$work/$role-$variant.core.yaml" <<'PY' || fail "rendering $role $variant"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
for m in monitors:
    assert m["apiVersion"] == "monitoring.coreos.com/v1", m
    ports = {p["name"] for d in docs if d["kind"] == "Service" for p in d["spec"]["ports"]}
    for e in m["spec"]["endpoints"]:
        assert e["port"] in ports, f"ServiceMonitor port {e['port']} is not a Service port {ports}"
yaml.safe_dump_all([d for d in docs if d["kind"] != "ServiceMonitor"], open(sys.argv[2], "w"))
PY
    kubernetes-validate --strict --quiet "$work/$role-$variant.core.yaml" || fail "kubernetes-validate --strict: $role $variant"
    # The pipeline the chart wrote is one tapline takes.
    python3 - "$out" "$work/$role-$variant.toml" <<'PY'
import sys, yaml
maps = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ConfigMap" and "pipeline.toml" in d.get("data", {})]
open(sys.argv[2], "w").write(maps[0]["data"]["pipeline.toml"] if maps else "")
PY
    if [ -s "$work/$role-$variant.toml" ]; then
      NODE_NAME=node-1 target/debug/tapline validate --no-environment --config "$work/$role-$variant.toml" >/dev/null 2>"$work/validate.log" ||
        { cat "$work/validate.log"; fail "the pipeline of $role $variant"; }
    elif [ $variant != existing ]; then
      fail "no pipeline ConfigMap in $role $variant"
    fi
  done
done
# The plain manifests are the chart's default renderings (scripts/render-manifests.sh writes them).
for role in agent aggregator sidecar-example; do
  diff -u "deploy/kubernetes/${role/sidecar-example/kong-sidecar}.yaml" <(scripts/render-manifests.sh --print "$role") >&2 ||
    fail "deploy/kubernetes is stale: run scripts/render-manifests.sh"
  kubernetes-validate --strict --quiet "deploy/kubernetes/${role/sidecar-example/kong-sidecar}.yaml" || fail "kubernetes-validate deploy/kubernetes ($role)"
done

# Kong's plugins in the sidecar example point where the sidecar's pipeline listens and reads.
python3 - "$chart/files/kong.yml" "$chart/files/kong-sidecar.toml" <<'PY' || fail "files/kong.yml does not match files/kong-sidecar.toml"
import re, sys, tomllib, yaml
from urllib.parse import urlsplit
plugins = {p["name"]: p["config"] for p in yaml.safe_load(open(sys.argv[1]))["plugins"]}
pipeline = tomllib.load(open(sys.argv[2], "rb"))
default = lambda text: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)
http = pipeline["sources"]["kong_http"]
url = urlsplit(plugins["http-log"]["http_endpoint"])
assert f"{url.hostname}:{url.port}" == default(http["address"]) and url.path == http["path"], (url, http)
log_dir = plugins["file-log"]["path"].rsplit("/", 1)[0]
assert default(pipeline["sources"]["kong_file"]["include"][0]) == log_dir + "/*.log", log_dir
PY

step "systemd: systemd-analyze verify"
root="$work/root"
mkdir -p "$root"/{usr/bin,bin,etc/systemd/system,usr/lib/systemd}
cp -a /lib/systemd/system "$root/usr/lib/systemd/"
cp /bin/kill "$root/bin/"
cp target/debug/tapline "$root/usr/bin/"
cp deploy/systemd/tapline.service "$root/etc/systemd/system/"
verdict=$(systemd-analyze verify --root="$root" tapline.service 2>&1) || fail "systemd-analyze verify: $verdict"
[ -z "$verdict" ] || fail "systemd-analyze verify has remarks: $verdict"

step "image: build (static binary, buildah)"
image=$(scripts/build-image.sh | tail -1)
bin=target/x86_64-unknown-linux-gnu/release/tapline

# The DaemonSet's container, as podman can give it: the same user, capabilities and mounts.
caps=$(python3 - "$work/agent-default.yaml" <<'PY'
import sys, yaml
ds = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "DaemonSet")
c = ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]
assert c["capabilities"]["drop"] == ["ALL"] and c["runAsUser"] == 0 and not c["allowPrivilegeEscalation"]
print(" ".join("CAP_" + cap for cap in c["capabilities"]["add"]), c.get("seccompProfile", {}).get("type", "RuntimeDefault"))
PY
)
seccomp=${caps##* } caps=${caps% *}
echo "the DaemonSet's capabilities: $caps; seccomp: $seccomp"
case $seccomp in
  Unconfined) seccomp_opt=(--security-opt seccomp=unconfined) ;;
  RuntimeDefault) seccomp_opt=() ;;
  *) fail "seccomp profile $seccomp: not known to this test" ;;
esac
mkdir -p "$work/agent-config" "$work/agent-data"
cp $chart/files/agent.toml "$work/agent-config/pipeline.toml"
agent_run=("${PODMAN[@]}" run "${ULIMITS[@]}" --network=host --pid=host --user 0
  --cap-drop=all $(printf -- '--cap-add=%s ' $caps) "${seccomp_opt[@]}" --security-opt no-new-privileges
  --read-only -v /sys/kernel/btf:/sys/kernel/btf:ro -v "$work/agent-config:/etc/tapline:ro"
  -v "$work/agent-data:/var/lib/tapline" --tmpfs /tmp)

step "image: tapline validate inside"
# Standard output apart: the runtime relays the two streams with no order between them.
"${agent_run[@]}" --rm -e NODE_NAME=node-1 "$image" validate >"$work/validate-in-image.log" 2>"$work/validate-in-image.err" ||
  { cat "$work/validate-in-image.log" "$work/validate-in-image.err"; fail "tapline validate in the image"; }
grep -q "^valid:" "$work/validate-in-image.log" ||
  fail "tapline validate in the image said: $(cat "$work/validate-in-image.log" "$work/validate-in-image.err")"

step "image: the agent's pipeline under the DaemonSet's capabilities, with the aggregator's and the sidecar's"
ch=http://127.0.0.1:${CLICKHOUSE_HTTP_PORT:-18123}
curl -sf "$ch/ping" >/dev/null || fail "ClickHouse is not running on $ch (scripts/clickhouse.sh start)"
database=deploy_$$
query() { curl -sf "$ch/" --data-binary "$1"; }

# The Kubernetes API, as the stand-in gives it (the agent's enrichment lists this node's pods).
python3 scripts/k8s_api_standin.py --port 0 --token test >"$work/standin.out" 2>"$work/standin.log" & pids+=($!)
until grep -q listening "$work/standin.out"; do sleep 0.1; done
api=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$work/standin.out" | head -1)
cat >"$work/agent-config/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: standin, cluster: {server: 'http://127.0.0.1:$api'}}]
users: [{name: u, user: {token: test}}]
contexts: [{name: c, context: {cluster: standin, user: u}}]
current-context: c
EOF

# The aggregator: OTLP in, ClickHouse out.
agg_grpc=$(free_port) agg_api=$(free_port)
TAPLINE_DATA_DIR="$work/agg-data" TAPLINE_API=127.0.0.1:$agg_api OTLP_GRPC_ADDRESS=127.0.0.1:$agg_grpc \
  OTLP_HTTP_ADDRESS=127.0.0.1:$(free_port) KONG_LOG_ADDRESS=127.0.0.1:$(free_port) REMOTE_WRITE_ADDRESS=127.0.0.1:$(free_port) \
  CLICKHOUSE_ENDPOINT=$ch CLICKHOUSE_DATABASE=$database \
  $bin run --config $chart/files/aggregator.toml 2>"$work/aggregator.log" & pids+=($!)

# The agent, in the image. Stitched traces go out 10 s after their last span (expire_after_ms).
agent_api=$(free_port)
"${agent_run[@]}" -d --name tapline-agent-test -e NODE_NAME=node-1 -e KUBECONFIG=/etc/tapline/kubeconfig \
  -e TAPLINE_API=127.0.0.1:$agent_api -e TAPLINE_METRICS=127.0.0.1:$(free_port) \
  -e TAPLINE_AGGREGATOR=http://127.0.0.1:$agg_grpc "$image" >/dev/null

# The sidecar's pipeline: Kong's http-log and file-log in, the aggregator out.
kong_port=$(free_port) sidecar_api=$(free_port)
mkdir -p "$work/kong-logs"
TAPLINE_DATA_DIR="$work/sidecar-data" TAPLINE_API=127.0.0.1:$sidecar_api TAPLINE_METRICS=127.0.0.1:$(free_port) \
  KONG_LOG_ADDRESS=127.0.0.1:$kong_port KONG_LOG_DIR="$work/kong-logs" TAPLINE_AGGREGATOR=http://127.0.0.1:$agg_grpc \
  $bin run --config $chart/files/kong-sidecar.toml 2>"$work/sidecar.log" & pids+=($!)

healthy() { curl -sf "127.0.0.1:$1/health" >/dev/null; }
for i in $(seq 100); do healthy $agg_api && healthy $agent_api && healthy $sidecar_api && break; sleep 0.2; done
healthy $agent_api || { "${PODMAN[@]}" logs tapline-agent-test >&2; fail "the agent in the image is not healthy"; }
healthy $agg_api && healthy $sidecar_api || { cat "$work/aggregator.log" "$work/sidecar.log" >&2; fail "aggregator or sidecar not healthy"; }
sleep 1 # the capture attaches after the API answers

# A request on the host, seen by the agent in its container.
web=$(free_port)
mkdir -p "$work/www/deploy-$$" && echo hello >"$work/www/deploy-$$/index.html"
python3 -m http.server "$web" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 & pids+=($!)
until curl -sf "127.0.0.1:$web/" >/dev/null; do sleep 0.1; done
for i in 1 2 3; do curl -sf "127.0.0.1:$web/deploy-$$/" >/dev/null; done

# A Kong entry through the http-log plugin's path, one through the file-log plugin's file.
entry() { python3 - "$1" <<'PY'
import json, sys
e = json.load(open("tests/fixtures/kong/kong3_single.json"))
e["request"]["uri"] = e["request"]["url"] = "/" + sys.argv[1]
e["request"]["id"] = "%032x" % (abs(hash(sys.argv[1])) % (1 << 120))
print(json.dumps(e, separators=(",", ":")))
PY
}
status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "[$(entry kong-http-$$)]" "127.0.0.1:$kong_port/kong")
[ "$status" = 200 ] || fail "the sidecar answered Kong's http-log with $status"
entry kong-file-$$ >>"$work/kong-logs/access.log"

# Everything in ClickHouse within a minute (10 s of stitch idle time, then batches of 1 s).
spans() { # spans whose url.path starts with $1
  query "SELECT count() FROM $database.spans WHERE startsWith(arrayElement(attributes_values, indexOf(attributes_keys, 'url.path')), '$1') FORMAT TabSeparated" 2>/dev/null || echo 0
}
for i in $(seq 120); do
  [ "$(spans "/deploy-$$/")" -ge 3 ] && [ "$(spans "/kong-http-$$")" -ge 1 ] && [ "$(spans "/kong-file-$$")" -ge 1 ] && break
  sleep 0.5
done
ebpf=$(spans "/deploy-$$/") kong_http=$(spans "/kong-http-$$") kong_file=$(spans "/kong-file-$$")
echo "in ClickHouse: $ebpf eBPF spans of 3 curls (client and server ends), $kong_http + $kong_file Kong spans (gateway and upstream)"
if [ "$ebpf" -lt 3 ] || [ "$kong_http" -lt 1 ] || [ "$kong_file" -lt 1 ]; then
  echo "--- agent"; "${PODMAN[@]}" logs tapline-agent-test 2>&1 | tail -20
  echo "--- aggregator"; tail -20 "$work/aggregator.log"; echo "--- sidecar"; tail -20 "$work/sidecar.log"
  fail "not every span reached ClickHouse"
fi
# The process table and the host table worked in the container (pids of the host, through hostPID).
query "SELECT count() FROM $database.spans WHERE startsWith(arrayElement(attributes_values, indexOf(attributes_keys, 'url.path')), '/deploy-$$/') AND has(resource_keys, 'process.executable.name') FORMAT TabSeparated" |
  grep -qv '^0$' || fail "the eBPF spans carry no process name"
query "DROP DATABASE IF EXISTS $database" >/dev/null
echo "deploy: all checks passed"
