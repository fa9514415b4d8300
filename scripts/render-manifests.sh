#!/usr/bin/env bash
# Write the plain manifests of deploy/kubernetes from the Helm chart, one file
# per role with the chart's defaults (release "tapline", namespace
# "observability"), so that users without Helm apply the same objects.
# scripts/test-deploy.sh fails when they differ from a fresh rendering.
#   scripts/render-manifests.sh            rewrite deploy/kubernetes/*.yaml
#   scripts/render-manifests.sh --print ROLE
set -euo pipefail
cd "$(dirname "$0")/.."
render() {
  echo "# tapline, role $1: rendered from deploy/helm/tapline by scripts/render-manifests.sh; do not edit."
  echo "# kubectl create namespace observability; kubectl apply -n observability -f <this file>"
  helm template tapline deploy/helm/tapline --namespace observability --set role="$1"
}
if [ "${1:-}" = --print ]; then
  render "$2"
  exit 0
fi
for role in agent aggregator sidecar-example; do
  render $role >"deploy/kubernetes/${role/sidecar-example/kong-sidecar}.yaml"
done
