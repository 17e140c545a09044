#!/usr/bin/env bash
# Cinepulse on a kind cluster (Kubernetes in Docker), for users with Docker and for the GitHub
# workflow .github/workflows/kind-e2e.yaml: the same steps as the local node's (one
# implementation, cinepulse_devstack.cluster, two node providers: --provider local|kind), after
# the build steps kind needs. Only how the cluster starts, how images reach it (kind load
# docker-image), where claims find storage (kind's default StorageClass) and how pods reach
# this machine differ (cinepulse_devstack/cluster/kind.py). docs/operations/cluster.md says
# what has run where: the project's machines have no Docker engine, so this path has not.
#
#   scripts/kind.sh build   the Prometheus operator, its reloader and Prometheus from the Go
#                           module proxy (scripts/k8s-tools.sh), every image with Docker
#   scripts/kind.sh up      build, then the cluster with the images loaded
#   scripts/kind.sh e2e     build, then the real-node e2e on kind: install, helm test, the
#                           Prometheus operator scraping every target, events end to end,
#                           a rolling upgrade under load, the demo's steps, uninstall; the
#                           cluster is deleted at the end (results/cluster-e2e.md)
#   scripts/kind.sh demo    build, then the demo on kind (make demo CLUSTER=kind); it stays up
#   scripts/kind.sh down    delete the cluster
#
# Needs docker, kind, kubectl, helm, go and uv on PATH. KIND_CLUSTER (cinepulse) names the
# cluster; DEMO_ARGS are passed to the demo (e.g. "--users 50").
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '==> [kind %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { echo "kind.sh: $*" >&2; exit 1; }
for tool in docker kind kubectl helm uv; do
  command -v "$tool" >/dev/null || die "$tool is not installed (needed for the kind targets)"
done
RUN=(uv run --frozen --all-packages python -m)
# the chart's values name localhost/cinepulse/<image> (ci/cluster-values.yaml), as podman does
export CINEPULSE_IMAGE_ENGINE=docker CINEPULSE_IMAGE_REPO=localhost/cinepulse

build() {
  command -v go >/dev/null || die "go is not installed (the Prometheus operator and Prometheus are built from the Go module proxy)"
  step "Go binaries (scripts/k8s-tools.sh: what is missing)"
  bash scripts/k8s-tools.sh
  step "images with Docker (scripts/images.sh all)"
  bash scripts/images.sh all
}

case "${1:-}" in
  build) build ;;
  up) build; "${RUN[@]}" cinepulse_devstack.cluster --provider kind up ;;
  e2e) build; "${RUN[@]}" cinepulse_devstack.cluster.e2e --provider kind ;;
  # shellcheck disable=SC2086 # DEMO_ARGS are words
  demo) build; "${RUN[@]}" cinepulse_devstack.cluster.demo --provider kind ${DEMO_ARGS:-} ;;
  down) "${RUN[@]}" cinepulse_devstack.cluster --provider kind down ;;
  *) die "usage: scripts/kind.sh build|up|e2e|demo|down" ;;
esac
