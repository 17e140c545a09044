#!/usr/bin/env bash
# Kubernetes for the chart's end-to-end tests, built from the Go module proxy only:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, and the node's kubelet
# and kube-proxy (a wrapper module around k8s.io/kubernetes, whose go.mod replaces its
# staging modules with local paths), etcd (a wrapper around go.etcd.io/etcd/server/v3), kwok
# and kwokctl (the fake-node cluster), CoreDNS (the real cluster's DNS; plain `go install`),
# the Prometheus operator, its config reloader and Prometheus (wrapper modules, like etcd), and
# Alertmanager (plain `go install`), and Traefik (the ingress controller; a patched copy of
# its module source, see below).
# Nothing else is downloaded: kwokctl is always given the path of every binary (see
# cinepulse_devstack.kube), and the real node runs these binaries (cinepulse_devstack.cluster).
#
# Binaries go to ~/.cache/cinepulse/bin/k8s with a version stamp (.NAME.version); a second
# run only checks. One progress line per step on stderr. Builds run under `nice -n 19`
# (other work shares the 2 cores); K8S_BUILD_P sets go build's -p (default: Go's, = cores).
# Cold (empty Go build cache, modules already downloaded) on the 2-core machine: 16 min wall,
# 15 min of CPU (12 min user, 3 min sys), peak 1.9 GB resident, with other work sharing the
# cores (load 6-9); under heavier load (11-13) the Kubernetes binaries alone took 33 min.
# With a warm Go build cache and no binaries: 2.5 min. Everything stamped: under a second.
# The Prometheus operator and its reloader alone: 7 min wall (425 s, downloading its modules
# included), 5.8 min of CPU, at load 3-6 (its client-go v0.33 shares little with Kubernetes');
# Prometheus after it: 5.7 min wall (342 s), 7.8 min of CPU. Alertmanager after those: 47 s
# wall, 35 s of CPU (most of its modules already there as Prometheus' dependencies).
# Traefik with an empty Go build cache (modules downloaded): 10 min wall (593 s) at load
# 6-12, 7 min of CPU (348 s user, 71 s sys), peak 3.2 GB resident (the link), 1.7 GB of
# build cache; with the cache warm: 8 s. Its binary is 144 MB.
# It adds about 1 GB to the Go module cache and 3.7 GB to the Go build cache.
#
#   bash scripts/k8s-tools.sh           build what is missing
#   bash scripts/k8s-tools.sh --check   exit 1 if anything is missing (builds nothing)
set -euo pipefail

K8S_VERSION="v1.34.4"             # k8s.io/kubernetes; staging modules at v0.34.4
ETCD_VERSION="v3.6.4"             # the etcd Kubernetes 1.34 pins (go.mod of k8s.io/kubernetes)
KWOK_VERSION="v0.8.0"             # sigs.k8s.io/kwok: kwok (controller) and kwokctl
COREDNS_VERSION="v1.14.7"         # github.com/coredns/coredns: the real cluster's DNS
PROMOP_VERSION="v0.85.0"          # github.com/prometheus-operator/prometheus-operator
PROMETHEUS_VERSION="v3.5.0"       # the Prometheus the operator runs on the real node...
PROMETHEUS_MODULE="v0.305.0"      # ...as github.com/prometheus/prometheus numbers it
ALERTMANAGER_VERSION="v0.28.1"    # github.com/prometheus/alertmanager (newest v0.2x the proxy serves)
TRAEFIK_VERSION="v3.7.13"         # github.com/traefik/traefik/v3: the real cluster's ingress controller
LEGO_VERSION="v5.4.1"             # github.com/go-acme/lego/v5, as Traefik's go.mod requires it

CACHE="${CINEPULSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cinepulse}"
BIN="$CACHE/bin/k8s"
WORK="$CACHE/k8s-build"
P_FLAG=()
[ -n "${K8S_BUILD_P:-}" ] && P_FLAG=(-p "$K8S_BUILD_P")
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"

step() { printf '==> [k8s-tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
stamp_ok() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" > "$BIN/.$1.version"; }

CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1
missing=()
for pair in kube-apiserver:$K8S_VERSION kube-controller-manager:$K8S_VERSION \
            kube-scheduler:$K8S_VERSION kubectl:$K8S_VERSION kubelet:$K8S_VERSION \
            kube-proxy:$K8S_VERSION etcd:$ETCD_VERSION kwok:$KWOK_VERSION \
            kwokctl:$KWOK_VERSION coredns:$COREDNS_VERSION \
            prometheus-operator:$PROMOP_VERSION prometheus-config-reloader:$PROMOP_VERSION \
            prometheus:$PROMETHEUS_VERSION alertmanager:$ALERTMANAGER_VERSION \
            traefik:$TRAEFIK_VERSION; do
  stamp_ok "${pair%%:*}" "${pair#*:}" || missing+=("${pair%%:*}")
done
if [ "$CHECK" = 1 ]; then
  if [ ${#missing[@]} -gt 0 ]; then
    echo "missing or stale in $BIN: ${missing[*]} (run: bash scripts/k8s-tools.sh)" >&2
    exit 1
  fi
  echo "all present in $BIN (kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION)" >&2
  exit 0
fi
command -v go >/dev/null || { echo "Go is needed (go.dev or the distribution)" >&2; exit 1; }
mkdir -p "$BIN" "$WORK"
t_all=$SECONDS

# -- kube-apiserver, kube-controller-manager, kube-scheduler, kubectl ----------------------
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
need_k8s=0
for b in "${K8S_BINS[@]}"; do stamp_ok "$b" "$K8S_VERSION" || need_k8s=1; done
if [ "$need_k8s" = 1 ]; then
  mod="$WORK/kubernetes-$K8S_VERSION"
  mkdir -p "$mod"
  staging="v0.${K8S_VERSION#v1.}"
  step "wrapper module for k8s.io/kubernetes@$K8S_VERSION (staging modules at $staging) in $mod"
  {
    echo "module cinepulse.local/k8s-tools"
    echo
    echo "go 1.24.0"
    echo
    echo "godebug default=go1.24"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    for s in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go \
             cloud-provider cluster-bootstrap code-generator component-base component-helpers \
             controller-manager cri-api cri-client csi-translation-lib \
             dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator \
             kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
             mount-utils pod-security-admission sample-apiserver sample-cli-plugin \
             sample-controller; do
      echo "	k8s.io/$s => k8s.io/$s $staging"
    done
    echo ")"
  } > "$mod/go.mod"
  cat > "$mod/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
EOF
  t0=$SECONDS
  step "go mod tidy (resolves the module graph; downloads the modules once)"
  (cd "$mod" && nice -n 19 go mod tidy >/dev/null)
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  step "go build ${K8S_BINS[*]} $K8S_VERSION (nice -n 19${K8S_BUILD_P:+, -p $K8S_BUILD_P}; cold: tens of minutes)"
  (cd "$mod" && nice -n 19 go build "${P_FLAG[@]}" -trimpath -ldflags "$ldflags" -o "$BIN/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
      k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
  for b in "${K8S_BINS[@]}"; do stamp "$b" "$K8S_VERSION"; done
  step "built ${K8S_BINS[*]} in $((SECONDS - t0))s: $("$BIN/kube-apiserver" --version)"
else
  step "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $K8S_VERSION present"
fi

# -- etcd -----------------------------------------------------------------------------------
if ! stamp_ok etcd "$ETCD_VERSION"; then
  mod="$WORK/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  step "wrapper module for go.etcd.io/etcd/server/v3@$ETCD_VERSION in $mod"
  cat > "$mod/go.mod" <<EOF
module cinepulse.local/etcd

go 1.24.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  cat > "$mod/tools.go" <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
  t0=$SECONDS
  (cd "$mod" && nice -n 19 go mod tidy >/dev/null)
  step "go build etcd $ETCD_VERSION"
  (cd "$mod" && nice -n 19 go build "${P_FLAG[@]}" -trimpath -ldflags "-s -w" \
      -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
  stamp etcd "$ETCD_VERSION"
  step "built etcd in $((SECONDS - t0))s: $("$BIN/etcd" --version | head -1)"
else
  step "etcd $ETCD_VERSION present"
fi

# -- kwok, kwokctl --------------------------------------------------------------------------
for b in kwok kwokctl; do
  if ! stamp_ok "$b" "$KWOK_VERSION"; then
    t0=$SECONDS
    step "go install sigs.k8s.io/kwok/cmd/$b@$KWOK_VERSION"
    GOBIN="$BIN" nice -n 19 go install "${P_FLAG[@]}" -trimpath \
      -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
      "sigs.k8s.io/kwok/cmd/$b@$KWOK_VERSION"
    stamp "$b" "$KWOK_VERSION"
    step "built $b in $((SECONDS - t0))s"
  else
    step "$b $KWOK_VERSION present"
  fi
done

# -- CoreDNS (the real node's cluster DNS; cinepulse_devstack.cluster runs it as a Deployment) --
if ! stamp_ok coredns "$COREDNS_VERSION"; then
  t0=$SECONDS
  step "go install github.com/coredns/coredns@$COREDNS_VERSION (cold: about 8 min)"
  GOBIN="$BIN" nice -n 19 go install "${P_FLAG[@]}" -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
  stamp coredns "$COREDNS_VERSION"
  step "built coredns in $((SECONDS - t0))s"
else
  step "coredns $COREDNS_VERSION present"
fi

# -- Prometheus operator and config reloader (the real node reads the chart's monitors) -----
# The module's go.mod replaces pkg/apis/monitoring and pkg/client with ./ paths, so `go install`
# refuses it; replace directives only apply in the main module, so a wrapper requiring the
# operator resolves the published submodules (same version) instead. The CRDs come from the
# same module (cinepulse_devstack.cluster.monitoring applies example/prometheus-operator-crd).
if ! stamp_ok prometheus-operator "$PROMOP_VERSION" \
    || ! stamp_ok prometheus-config-reloader "$PROMOP_VERSION"; then
  mod="$WORK/prometheus-operator-$PROMOP_VERSION"
  pkg=github.com/prometheus-operator/prometheus-operator
  mkdir -p "$mod"
  printf 'module cinepulse.local/prometheus-operator\n\ngo 1.24.0\n\nrequire %s %s\n' \
    "$pkg" "$PROMOP_VERSION" > "$mod/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "%s/cmd/operator"\n\t_ "%s/cmd/prometheus-config-reloader"\n)\n' \
    "$pkg" "$pkg" > "$mod/tools.go"
  t0=$SECONDS
  step "go build prometheus-operator, prometheus-config-reloader $PROMOP_VERSION (wrapper module; cold: about 7 min)"
  (cd "$mod" && nice -n 19 go mod tidy >/dev/null)
  # the operator's Makefile stamps prometheus/common's version package: `--version` and the
  # build_info metric report it
  ldflags="-s -w -X github.com/prometheus/common/version.Version=${PROMOP_VERSION#v}"
  (cd "$mod" && nice -n 19 go build "${P_FLAG[@]}" -trimpath -ldflags "$ldflags" \
      -o "$BIN/prometheus-operator" "$pkg/cmd/operator" \
    && nice -n 19 go build "${P_FLAG[@]}" -trimpath -ldflags "$ldflags" \
      -o "$BIN/prometheus-config-reloader" "$pkg/cmd/prometheus-config-reloader")
  stamp prometheus-operator "$PROMOP_VERSION"
  stamp prometheus-config-reloader "$PROMOP_VERSION"
  step "built prometheus-operator, prometheus-config-reloader in $((SECONDS - t0))s"
else
  step "prometheus-operator, prometheus-config-reloader $PROMOP_VERSION present"
fi

# -- Prometheus (the server the operator runs on the real node) ------------------------------
# Debian's prometheus package is built without Kubernetes service discovery (its config
# parser refuses kubernetes_sd_configs), which every ServiceMonitor and PodMonitor needs.
# Upstream's build from the module proxy has it; the module's go.mod excludes and replaces
# (go install refuses it), so a wrapper module with the same replace. Module versions are
# v0.<minor>.<patch> for Prometheus 3.<minor/100>...: v0.305.0 is Prometheus 3.5.0 (the LTS
# the operator's module itself requires). No web UI assets (they need npm): the API is enough.
if ! stamp_ok prometheus "$PROMETHEUS_VERSION"; then
  mod="$WORK/prometheus-$PROMETHEUS_VERSION"
  pkg=github.com/prometheus/prometheus
  mkdir -p "$mod"
  printf 'module cinepulse.local/prometheus\n\ngo 1.24.0\n\nrequire %s %s\n\nreplace github.com/fsnotify/fsnotify v1.8.0 => github.com/fsnotify/fsnotify v1.7.0\n' \
    "$pkg" "$PROMETHEUS_MODULE" > "$mod/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s/cmd/prometheus"\n' "$pkg" > "$mod/tools.go"
  t0=$SECONDS
  step "go build prometheus $PROMETHEUS_VERSION ($pkg@$PROMETHEUS_MODULE, wrapper module)"
  (cd "$mod" && nice -n 19 go mod tidy >/dev/null)
  ldflags="-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}"
  (cd "$mod" && nice -n 19 go build "${P_FLAG[@]}" -trimpath -tags netgo -ldflags "$ldflags" \
      -o "$BIN/prometheus" "$pkg/cmd/prometheus")
  stamp prometheus "$PROMETHEUS_VERSION"
  step "built prometheus in $((SECONDS - t0))s: $("$BIN/prometheus" --version 2>&1 | head -1)"
else
  step "prometheus $PROMETHEUS_VERSION present"
fi

# -- Alertmanager (receives the alerts of the real node's Prometheus) -----------------------
# The module has no replace or exclude directives: plain `go install`. Its web UI is
# committed as generated Go (asset/assets_vfsdata.go), so no npm either.
if ! stamp_ok alertmanager "$ALERTMANAGER_VERSION"; then
  t0=$SECONDS
  step "go install github.com/prometheus/alertmanager/cmd/alertmanager@$ALERTMANAGER_VERSION"
  GOBIN="$BIN" nice -n 19 go install "${P_FLAG[@]}" -trimpath -tags netgo \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=${ALERTMANAGER_VERSION#v}" \
    "github.com/prometheus/alertmanager/cmd/alertmanager@$ALERTMANAGER_VERSION"
  stamp alertmanager "$ALERTMANAGER_VERSION"
  step "built alertmanager in $((SECONDS - t0))s: $("$BIN/alertmanager" --version 2>&1 | head -1)"
else
  step "alertmanager $ALERTMANAGER_VERSION present"
fi

# -- Traefik (the ingress controller in front of the chart's Ingresses on the real node) ------
# `go install` refuses the module (its go.mod replaces), so its source from the module cache,
# copied to a writable folder and built there as the main module, with three changes, none
# in what the kubernetesIngress provider and the router do:
#  - pkg/config/dynamic/ext is a nested module (github.com/traefik/traefik/dynamic/ext,
#    replaced by that path) the module zip leaves out and the proxy does not serve: recreated
#    as upstream's open-source tree has it, two empty structs;
#  - the go.mod replaces github.com/abbot/go-http-auth by containous' fork, which the proxy
#    here does not serve: a copy of upstream's v0.4.0 instead, with the two functions the
#    fork adds and Traefik's basicAuth/digestAuth middlewares call (CheckSecret,
#    DigestAuth.RequireAuthStale), written after v0.4.0's own code;
#  - lego's DNS provider registry (providers/dns: every ACME DNS-01 provider) imports SDKs
#    the proxy here does not serve (Akamai, Huawei, Oracle, Sakura, UCloud, Yandex): a copy
#    of lego with that registry reduced to "no provider" (ACME DNS challenges fail).
# The web UI is not built (npm): the module zip's webui/static holds one placeholder file,
# which satisfies its //go:embed, so the dashboard is empty; routing, the API and /ping work.
if ! stamp_ok traefik "$TRAEFIK_VERSION"; then
  t0=$SECONDS
  src="$WORK/traefik-$TRAEFIK_VERSION"
  step "go build traefik $TRAEFIK_VERSION (a patched copy of its module source in $src)"
  moddir() { (cd "$WORK" && go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'); }
  traefik_dir="$(moddir "github.com/traefik/traefik/v3@$TRAEFIK_VERSION")"
  lego_dir="$(moddir "github.com/go-acme/lego/v5@$LEGO_VERSION")"
  httpauth_dir="$(moddir "github.com/abbot/go-http-auth@v0.4.0")"
  for d in "$traefik_dir" "$lego_dir" "$httpauth_dir"; do
    [ -d "$d" ] || { echo "go mod download failed (traefik, lego, go-http-auth)" >&2; exit 1; }
  done
  rm -rf "$src" && cp -r "$traefik_dir" "$src" && chmod -R u+w "$src"
  mkdir -p "$src/pkg/config/dynamic/ext"
  printf 'module github.com/traefik/traefik/dynamic/ext\n\ngo 1.24.0\n' \
    > "$src/pkg/config/dynamic/ext/go.mod"
  printf '%s\n' 'package ext' '' '// HTTP is a dynamic.HTTP extension.' 'type HTTP struct{}' '' \
    '// Router is a dynamic.Router extension.' 'type Router struct{}' \
    > "$src/pkg/config/dynamic/ext/ext.go"
  cp -r "$lego_dir" "$src/third_party-lego" && chmod -R u+w "$src/third_party-lego"
  cat > "$src/third_party-lego/providers/dns/zz_gen_dns_providers.go" <<'GO'
package dns

import (
	"fmt"

	"github.com/go-acme/lego/v5/challenge"
)

// NewDNSChallengeProviderByName: no DNS-01 provider in this build (scripts/k8s-tools.sh).
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("unrecognized DNS provider: %s (none in this build)", name)
}
GO
  cp -r "$httpauth_dir" "$src/third_party-go-http-auth" && chmod -R u+w "$src/third_party-go-http-auth"
  printf 'module github.com/abbot/go-http-auth\n\ngo 1.17\n' > "$src/third_party-go-http-auth/go.mod"
  cat > "$src/third_party-go-http-auth/containous_fork.go" <<'GO'
package auth

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// CheckSecret tells whether password matches secret (an htpasswd hash: MD5 crypt, {SHA} or
// bcrypt), compared as BasicAuth.CheckAuth does (the fork's function, for Traefik).
func CheckSecret(password, secret string) bool {
	compare := compareFuncs[0].compare
	for _, cmp := range compareFuncs[1:] {
		if strings.HasPrefix(secret, cmp.prefix) {
			compare = cmp.compare
			break
		}
	}
	return compare([]byte(secret), []byte(password)) == nil
}

// RequireAuthStale is RequireAuth telling the client its nonce was stale (the fork's).
func (a *DigestAuth) RequireAuthStale(w http.ResponseWriter, r *http.Request) {
	if len(a.clients) > a.ClientCacheSize+a.ClientCacheTolerance {
		a.Purge(a.ClientCacheTolerance * 2)
	}
	nonce := RandomKey()
	a.clients[nonce] = &digest_client{nc: 0, last_seen: time.Now().UnixNano()}
	w.Header().Set(contentType, a.Headers.V().UnauthContentType)
	w.Header().Set(a.Headers.V().Authenticate,
		fmt.Sprintf(`Digest realm="%s", nonce="%s", opaque="%s", algorithm="MD5", qop="auth", stale=true`,
			a.Realm, nonce, a.Opaque))
	w.WriteHeader(a.Headers.V().UnauthCode)
	w.Write([]byte(a.Headers.V().UnauthResponse))
}
GO
  (cd "$src" && go mod edit -replace "github.com/go-acme/lego/v5=./third_party-lego" \
      -replace "github.com/abbot/go-http-auth=./third_party-go-http-auth")
  ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION"
  (cd "$src" && nice -n 19 go build "${P_FLAG[@]}" -mod=mod -trimpath -ldflags "$ldflags" \
      -o "$BIN/traefik" ./cmd/traefik)
  stamp traefik "$TRAEFIK_VERSION"
  step "built traefik in $((SECONDS - t0))s: $("$BIN/traefik" version 2>&1 | head -1)"
else
  step "traefik $TRAEFIK_VERSION present"
fi

# CPU time of the builds (children's user and sys): the part of the wall time that does not
# depend on what else the machine runs
times > "$WORK/.times"   # in this shell: $(times) would time a subshell
cpu="$(tail -1 "$WORK/.times")"
step "done in $((SECONDS - t_all))s (builds' CPU user/sys: $cpu); binaries in $BIN"
