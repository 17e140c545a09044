#!/usr/bin/env bash
# Everything a fresh machine needs for Cinepulse: system packages, the pinned Python
# environment (uv.lock) and the local stack's components (Kafka jars, FerretDB build).
# Idempotent: a second run only checks. Progress goes to stderr, one line per step.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
step() { printf '\n==> [setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
t0=$SECONDS

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# -- system packages (Debian) ------------------------------------------------------
need_pkgs=()
command -v java >/dev/null || need_pkgs+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_pkgs+=(maven)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_pkgs+=(postgresql-15 postgresql-client-15)
command -v prometheus >/dev/null || need_pkgs+=(prometheus)
command -v promtool >/dev/null || need_pkgs+=(prometheus)
command -v prometheus-pushgateway >/dev/null || need_pkgs+=(prometheus-pushgateway)
# the Airflow alert hook's test runs a real Alertmanager (airflow/tests/conftest.py)
command -v prometheus-alertmanager >/dev/null || need_pkgs+=(prometheus-alertmanager)
# the explorer's browser test (headless Chromium driven by Selenium); lightfm's build (gcc, OpenMP)
command -v chromium >/dev/null || need_pkgs+=(chromium)
command -v chromedriver >/dev/null || need_pkgs+=(chromium-driver)
command -v gcc >/dev/null || need_pkgs+=(gcc libgomp1 python3-dev)
# the real one-node cluster (make cluster-e2e, in make test) and the images it runs:
# containerd + runc + the CNI plugins, iptables/conntrack for kube-proxy, podman +
# debootstrap for the images, a static libc for the pause image
command -v containerd >/dev/null || need_pkgs+=(containerd)
command -v runc >/dev/null || need_pkgs+=(runc)
[ -x /usr/lib/cni/bridge ] || need_pkgs+=(containernetworking-plugins)
command -v iptables >/dev/null || need_pkgs+=(iptables)
command -v conntrack >/dev/null || need_pkgs+=(conntrack)
command -v podman >/dev/null || need_pkgs+=(podman)
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
command -v openssl >/dev/null || need_pkgs+=(openssl)
dpkg -s libc6-dev >/dev/null 2>&1 || need_pkgs+=(libc6-dev)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  step "apt-get install ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  # the Debian packages try to start their own services; we run our own instances
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_pkgs[@]}" >/dev/null
else
  step "system packages present (java, mvn, postgresql-15, prometheus, pushgateway, alertmanager, chromium, gcc, containerd, podman)"
fi
command -v go >/dev/null || { echo "Go 1.22+ is needed to build FerretDB: install it from go.dev or your distribution" >&2; exit 1; }

# -- Python: uv and the locked workspace --------------------------------------------
if ! command -v uv >/dev/null || [ "$(uv --version | awk '{print $2}')" != "$UV_VERSION" ]; then
  step "pip install uv==$UV_VERSION"
  python3 -m pip install -q "uv==$UV_VERSION"
fi
UV=uv
command -v uv >/dev/null || UV="python3 -m uv"
step "uv sync --all-packages --frozen (Python deps at the versions in uv.lock)"
$UV sync --all-packages --frozen --quiet --compile-bytecode

# -- lightfm: built outside uv (its sdist fails under PEP 517) ------------------------
# lightfm 1.17's setup.py sets an attribute on __builtins__, which only works when pip runs
# it as a script (pip<25 --no-use-pep517); the wheel is built once, with OpenMP, into the
# cache and installed into .venv after every sync (uv sync removes what uv.lock lacks).
LIGHTFM_VERSION="1.17"
CACHE="${CINEPULSE_CACHE:-$HOME/.cache/cinepulse}"
WHEELS="$CACHE/wheels"
if ! ls "$WHEELS"/lightfm-"$LIGHTFM_VERSION"-*.whl >/dev/null 2>&1; then
  step "build lightfm==$LIGHTFM_VERSION (pip<25 --no-use-pep517, OpenMP) into $WHEELS"
  BUILD_VENV="$CACHE/lightfm-build-venv"
  rm -rf "$BUILD_VENV"
  python3 -m venv "$BUILD_VENV"
  "$BUILD_VENV/bin/pip" install -q "pip==24.3.1" "setuptools==80.9.0" "wheel==0.45.1"
  mkdir -p "$WHEELS"
  "$BUILD_VENV/bin/pip" wheel -q --no-deps --no-use-pep517 --no-build-isolation \
    "lightfm==$LIGHTFM_VERSION" -w "$WHEELS"
  rm -rf "$BUILD_VENV"
fi
if ! .venv/bin/python -c "import lightfm" 2>/dev/null; then
  step "install lightfm==$LIGHTFM_VERSION into .venv (from $WHEELS)"
  $UV pip install --quiet --python .venv/bin/python --no-deps "$WHEELS"/lightfm-"$LIGHTFM_VERSION"-*.whl
else
  step "lightfm==$LIGHTFM_VERSION present"
fi

# -- Airflow: its own uv project and lock (airflow/uv.lock), outside the workspace --------
step "uv sync --frozen in airflow/ (Airflow 3.3.2 + cncf-kubernetes provider into airflow/.venv)"
(cd airflow && $UV sync --frozen --quiet --compile-bytecode)

# -- local stack components ---------------------------------------------------------
step "stack components: Kafka jars (Maven Central), FerretDB (Go module proxy), PostgreSQL, Prometheus"
.venv/bin/cinepulse-stack install

step "Spark's Kafka connector and PostgreSQL JDBC jars (Maven Central)"
.venv/bin/python -m cinepulse_spark_jobs.jars

# -- chart tools: helm, kubeconform, kube-score from the Go module proxy (built once) --------
GOBIN_DIR="$CACHE/bin"
mkdir -p "$GOBIN_DIR"
for tool in helm.sh/helm/v3/cmd/helm@v3.19.5 \
            github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0 \
            github.com/zegl/kube-score/cmd/kube-score@v1.20.0; do
  name="$(basename "${tool%@*}")"
  version="${tool#*@}"
  if [ ! -x "$GOBIN_DIR/$name" ] || [ "$(cat "$GOBIN_DIR/.$name.version" 2>/dev/null)" != "$version" ]; then
    step "go install $tool into $GOBIN_DIR (chart checks)"
    GOBIN="$GOBIN_DIR" go install "$tool"
    echo "$version" > "$GOBIN_DIR/.$name.version"
  fi
done
# Toxiproxy for the network fault drill (tests/drills/test_drills_network.py): its module
# installs a binary named "server", so it is installed aside and renamed
TOXIPROXY_VERSION="v2.12.0"
if [ ! -x "$GOBIN_DIR/toxiproxy-server" ] || [ "$(cat "$GOBIN_DIR/.toxiproxy-server.version" 2>/dev/null)" != "$TOXIPROXY_VERSION" ]; then
  step "go install github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION as $GOBIN_DIR/toxiproxy-server (fault drills)"
  toxi_tmp="$(mktemp -d)"
  GOBIN="$toxi_tmp" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  mv "$toxi_tmp/server" "$GOBIN_DIR/toxiproxy-server"
  rmdir "$toxi_tmp"
  echo "$TOXIPROXY_VERSION" > "$GOBIN_DIR/.toxiproxy-server.version"
fi

# -- a real control plane for the chart's end-to-end test (tests/e2e): kube-apiserver,
# controller-manager, scheduler, kubectl, etcd, kwok from the Go module proxy; about 16 min
# cold on 2 cores, under a second once built (cached in ~/.cache/cinepulse/bin/k8s)
bash scripts/k8s-tools.sh

step "emotion classifier: trained from GoEmotions into ~/.cache/cinepulse/models (skipped when present; without GoEmotions, a demo model from the sample the repo ships)"
.venv/bin/python -m cinepulse_emotion train

step "done in $((SECONDS - t0))s"
