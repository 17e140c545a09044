#!/usr/bin/env bash
# Cinepulse on a kind cluster, for users with Docker (and for the GitHub Actions workflow
# .github/workflows/kind-e2e.yaml). Not runnable on the project's own machines: they have
# no Docker engine and reach no chart repository; there the chart is verified on a kwok
# control plane instead (make chart-e2e).
#
#   scripts/kind.sh up     a kind cluster; the images built with Docker and loaded into it;
#                          the prerequisites (Spark operator, kube-prometheus-stack) from
#                          their chart repositories; the write-keys Secret; the chart
#   scripts/kind.sh e2e    helm test (an event through the gateway, read back through the
#                          api once Spark modelled it), then every Deployment available
#   scripts/kind.sh down   delete the cluster
#
# Needs docker, kind, kubectl and helm on PATH. KIND_CLUSTER (cinepulse) names the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${KIND_CLUSTER:-cinepulse}"
NAMESPACE=cinepulse
RELEASE=cinepulse
SPARK_OPERATOR_VERSION="2.5.2"            # kubeflow/spark-operator, the CRDs of shared/k8s-crds
KUBE_PROMETHEUS_STACK_VERSION="88.0.0"   # ships prometheus-operator v0.93.0, the CRDs of shared/k8s-crds
step() { printf '==> [kind %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { echo "kind.sh: $*" >&2; exit 1; }

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || die "$tool is not installed (needed for the kind targets)"
done

version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"

up() {
  if ! kind get clusters | grep -qx "$CLUSTER"; then
    step "kind create cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --wait 180s
  fi
  step "build the images with Docker (public python:3.11-slim-bookworm base)"
  CINEPULSE_IMAGE_ENGINE=docker bash scripts/images.sh
  for dockerfile in services/*/Dockerfile migrations/Dockerfile; do
    svc="$(basename "$(dirname "$dockerfile")")"
    step "kind load docker-image cinepulse/$svc:$version"
    kind load docker-image --name "$CLUSTER" "cinepulse/$svc:$version"
  done
  step "prerequisites: Spark operator $SPARK_OPERATOR_VERSION, kube-prometheus-stack $KUBE_PROMETHEUS_STACK_VERSION"
  helm repo add spark-operator https://kubeflow.github.io/spark-operator >/dev/null
  helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null
  helm repo update >/dev/null
  helm upgrade --install spark-operator spark-operator/spark-operator \
    --version "$SPARK_OPERATOR_VERSION" -n spark-operator --create-namespace \
    --set "spark.jobNamespaces={$NAMESPACE}" --wait
  helm upgrade --install monitoring prometheus-community/kube-prometheus-stack \
    --version "$KUBE_PROMETHEUS_STACK_VERSION" -n monitoring --create-namespace \
    --set grafana.sidecar.dashboards.enabled=true --wait
  step "namespace $NAMESPACE (Pod Security restricted) and the write-keys Secret"
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
  kubectl label --overwrite namespace "$NAMESPACE" pod-security.kubernetes.io/enforce=restricted
  if ! kubectl -n "$NAMESPACE" get secret cinepulse-write-keys >/dev/null 2>&1; then
    kubectl -n "$NAMESPACE" create secret generic cinepulse-write-keys \
      --from-literal=frontend="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  fi
  step "helm upgrade --install $RELEASE charts/cinepulse"
  helm upgrade --install "$RELEASE" charts/cinepulse -n "$NAMESPACE" \
    -f charts/cinepulse/ci/default-values.yaml \
    --set monitoring.serviceMonitors.labels.release=monitoring \
    --set monitoring.rules.labels.release=monitoring \
    --set "networkPolicies.prometheusNamespaceSelector.matchLabels.kubernetes\.io/metadata\.name=monitoring" \
    --wait --wait-for-jobs --timeout 15m
}

e2e() {
  step "helm test $RELEASE (an event through the gateway, read back through the api)"
  helm test "$RELEASE" -n "$NAMESPACE" --timeout 10m --logs
  step "every Deployment available"
  kubectl -n "$NAMESPACE" wait --for=condition=Available deployment --all --timeout 300s
}

down() {
  step "kind delete cluster $CLUSTER"
  kind delete cluster --name "$CLUSTER"
}

case "${1:-}" in
  up) up ;;
  e2e) e2e ;;
  down) down ;;
  *) die "usage: scripts/kind.sh up|e2e|down" ;;
esac
