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
if [ ${#need_pkgs[@]} -gt 0 ]; then
  step "apt-get install ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  # the Debian packages try to start their own services; we run our own instances
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_pkgs[@]}" >/dev/null
else
  step "system packages present (java, mvn, postgresql-15, prometheus, pushgateway)"
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

# -- local stack components ---------------------------------------------------------
step "stack components: Kafka jars (Maven Central), FerretDB (Go module proxy), PostgreSQL, Prometheus"
.venv/bin/cinepulse-stack install

step "Spark's Kafka connector and PostgreSQL JDBC jars (Maven Central)"
.venv/bin/python -m cinepulse_spark_jobs.jars

step "emotion classifier: trained from GoEmotions into ~/.cache/cinepulse/models (skipped when present)"
.venv/bin/python -m cinepulse_common.emotion train

step "done in $((SECONDS - t0))s"
