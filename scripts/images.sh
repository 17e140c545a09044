#!/usr/bin/env bash
# Builds the Cinepulse container images: `make images` (the services), `make image-<svc>` (one),
# `make images-deps` (the chart's bundled dependencies), `make images-all` (both).
#
#   scripts/images.sh [SVC...]     SVC: a folder with a Dockerfile (services/<svc>, migrations)
#   scripts/images.sh deps         the chart's bundled dependencies (kafka postgres mongodb
#                                  prometheus pushgateway; or name some): scripts/images-deps.sh
#   scripts/images.sh all          both
#
# Each image is tagged cinepulse/<svc>:<version>-<git short sha> and cinepulse/<svc>:<version>
# (<version> from the workspace pyproject.toml). Steps, one progress line each on stderr:
#   1. the base image: with podman and no CINEPULSE_BASE_IMAGE, a Debian bookworm made with
#      `debootstrap --variant=minbase` (+ python3, python3-venv) and `podman import`ed, since
#      no registry can be reached here; its root filesystem is cached as a tarball
#   2. per image, on the host: the locked requirement set (`uv export`), its wheels (built or
#      downloaded once into ~/.cache/cinepulse/wheels/pypi), the workspace packages' wheels
#      (`uv build`) and the artefacts the image bakes in, staged under build/images/<svc>/
#   3. `podman build` (runc runtime, host network; the repository is the context and
#      .dockerignore lets through only images/ and build/images/): images/Dockerfile, the
#      stages every image shares, as cinepulse/<svc>-base, then the service's Dockerfile
#
# Settings: those of scripts/images-common.sh (engine, base image, cache), and
# CINEPULSE_IMAGE_REPO (cinepulse).
# Idempotent: unchanged inputs reuse the cached base, wheels and image layers.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/images-common.sh
source scripts/images-common.sh
REPO="${CINEPULSE_IMAGE_REPO:-cinepulse}"
WHEELHOUSE="$CACHE/wheels/pypi"
UV=uv
command -v uv >/dev/null || UV="python3 -m uv"
RUN="$UV run --frozen --all-packages"

# -- what to build ----------------------------------------------------------------------
all_images() {
  for f in services/*/Dockerfile migrations/Dockerfile; do
    [ -f "$f" ] && basename "$(dirname "$f")"
  done
}
dir_of() { if [ "$1" = migrations ]; then echo migrations; else echo "services/$1"; fi; }
project_field() { sed -n "s/^$2 = \"\(.*\)\"/\1/p" "$1/pyproject.toml" | head -1; }

# the chart's bundled dependencies (images/deps/<name>/): named, or `deps` for all of them;
# `all` is every service and every dependency; no argument: the services, as ever
DEPS=(kafka postgres mongodb prometheus pushgateway)
targets=()
dep_targets=()
[ $# -gt 0 ] || mapfile -t targets < <(all_images)
for arg in "$@"; do
  case "$arg" in
    deps) dep_targets+=("${DEPS[@]}") ;;
    all)
      dep_targets+=("${DEPS[@]}")
      mapfile -t -O "${#targets[@]}" targets < <(all_images)
      ;;
    *) if [[ " ${DEPS[*]} " == *" $arg "* ]]; then dep_targets+=("$arg"); else targets+=("$arg"); fi ;;
  esac
done
for svc in "${targets[@]}"; do
  [ -f "$(dir_of "$svc")/Dockerfile" ] ||
    die "no Dockerfile for '$svc' (known: $(all_images | paste -sd ' ') ${DEPS[*]} deps all)"
done

VERSION="$(project_field . version)"
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
TAG="$VERSION-$(git rev-parse --short HEAD 2>/dev/null || echo local)"

# -- 1. the base image (scripts/images-common.sh) ---------------------------------------
ensure_base_image

# the bundled dependencies' images (scripts/images-deps.sh), then the services'
if [ ${#dep_targets[@]} -gt 0 ]; then
  # shellcheck source=scripts/images-deps.sh
  source scripts/images-deps.sh
  for dep in "${dep_targets[@]}"; do build_dep "$dep"; done
fi
[ ${#targets[@]} -gt 0 ] || exit 0

# -- 2. the build context, on the host ----------------------------------------------------
# The locked, complete requirement set of one workspace package (no workspace members).
export_requirements() {
  $UV export --quiet --frozen --package "$1" --no-dev --no-hashes --no-header --no-annotate \
    --no-emit-workspace --format requirements.txt
}

# Wheels for a requirement set into the wheelhouse, once per distinct set: most are
# downloaded, the few published only as sdists are built here (same Debian, same Python).
ensure_wheels() {
  local req="$1" stamp
  stamp="$WHEELHOUSE/.complete-$(sha256sum "$req" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  mkdir -p "$WHEELHOUSE"
  python3 -m pip wheel --quiet --disable-pip-version-check --no-deps \
    --wheel-dir "$WHEELHOUSE" --find-links "$WHEELHOUSE" -r "$req" \
    >"$LOGS/wheels.log" 2>&1 || die "building/downloading wheels failed; see $LOGS/wheels.log"
  touch "$stamp"
}

# What an image needs beyond its wheels: Debian packages (APT_PACKAGES) and artefacts that
# images/Dockerfile copies from build/images/<svc>/extras/ into /opt/cinepulse/.
stage_extras() {
  local svc="$1" ctx="$2"
  APT_PACKAGES=""
  case "$svc" in
    recommender) # lightfm: built by make setup outside uv (pip<25 --no-use-pep517)
      local whl=("$CACHE"/wheels/lightfm-1.17-*.whl)
      [ -f "${whl[0]}" ] || die "the lightfm wheel is missing in $CACHE/wheels: run make setup"
      cp "${whl[0]}" "$ctx/deps/"
      echo "lightfm==1.17" >>"$ctx/deps/requirements.txt"
      APT_PACKAGES="libgomp1" # lightfm's OpenMP runtime
      ;;
    spark-jobs) # the Kafka connector and JDBC driver jars, and the emotion classifier
      APT_PACKAGES="openjdk-17-jre-headless"
      mkdir -p "$ctx/extras/jars"
      $RUN python -c 'from pathlib import Path
from cinepulse_spark_jobs.jars import default_dir, needed_jars
print("\n".join(str(p) for p in needed_jars(default_dir(Path.home() / ".cache" / "cinepulse"))))' |
        xargs -r cp -t "$ctx/extras/jars/" || die "the Spark jars are missing: run make setup"
      stage_model "$ctx"
      ;;
    pandas-fallback) stage_model "$ctx" ;;
  esac
}
stage_model() {
  local model
  model="$($RUN python -c 'from cinepulse_emotion.model import default_model_path as p; print(p())')"
  [ -f "$model" ] || die "the emotion classifier $model is missing: run make setup"
  # a demo model (trained from the shipped sample, without GoEmotions) is fine for a demo
  # on this machine; say so loudly, since an image carries it wherever it goes
  if $RUN python -c 'import sys; from cinepulse_emotion.model import EmotionClassifier as E
sys.exit(0 if E.load(sys.argv[1]).is_demo else 1)' "$model"; then
    echo "WARNING: $model is a DEMO emotion model (the shipped sample, macro-F1 about 0.47);" \
      "fetch GoEmotions (cinepulse-data fetch goemotions) and run make setup before" \
      "building images for anything but a demo" >&2
  fi
  mkdir -p "$1/extras/models"
  cp "$model" "$1/extras/models/emotion.joblib"
}

stage() {
  local svc="$1" dir ctx pkg member
  dir="$(dir_of "$svc")"
  ctx="$STAGE/$svc"
  pkg="$(project_field "$dir" name)"
  rm -rf "$ctx"
  mkdir -p "$ctx/deps" "$ctx/workspace" "$ctx/extras"
  export_requirements "$pkg" >"$ctx/deps/requirements.txt"
  ensure_wheels "$ctx/deps/requirements.txt"
  python3 -m pip download --quiet --disable-pip-version-check --no-index --no-deps \
    --find-links "$WHEELHOUSE" -d "$ctx/deps" -r "$ctx/deps/requirements.txt" \
    >"$LOGS/$svc.stage.log" 2>&1 || die "wheels missing for $svc; see $LOGS/$svc.stage.log"
  # the workspace members it needs (the shared library, the package itself), as wheels
  for member in $($UV export --quiet --frozen --package "$pkg" --no-dev --no-hashes --no-header \
    --no-annotate --no-editable --format requirements.txt | sed -n 's|^\./||p'); do
    workspace_wheel "$member" "$ctx/workspace"
  done
  stage_extras "$svc" "$ctx"
}

# A workspace member's wheel, built once per run (hatchling's wheels are reproducible, so an
# unchanged package keeps its image layers).
declare -A BUILT=()
workspace_wheel() {
  local out="$STAGE/.workspace/$1"
  if [ -z "${BUILT[$1]:-}" ]; then
    rm -rf "$out"
    $UV build --quiet --wheel --out-dir "$out" "$1" >>"$LOGS/workspace.log" 2>&1 ||
      die "uv build $1 failed; see $LOGS/workspace.log"
    BUILT[$1]=1
  fi
  cp "$out"/*.whl "$2/"
}

# -- 3. build ------------------------------------------------------------------------------
rm -rf "$STAGE/.workspace"
mkdir -p "$STAGE" "$LOGS"
: >"$LOGS/workspace.log"
for svc in "${targets[@]}"; do
  t0=$SECONDS
  step "$svc: stage requirements, wheels and artefacts in $STAGE/$svc"
  stage "$svc"
  image="$REPO/$svc"
  step "$svc: $ENGINE build $image:$TAG (log: $LOGS/$svc.build.log)"
  # the shared stages (images/Dockerfile) as $image-base, then the service's Dockerfile
  if ! {
    engine build "${BUILD_ARGS[@]}" --network host --file images/Dockerfile \
      --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "SERVICE=$svc" \
      --build-arg "APT_PACKAGES=$APT_PACKAGES" \
      --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
      --tag "$image-base" . &&
      engine build "${BUILD_ARGS[@]}" --network host --file "$(dir_of "$svc")/Dockerfile" \
        --build-arg "SERVICE_BASE=$image-base" \
        --tag "$image:$TAG" --tag "$image:$VERSION" .
  } >"$LOGS/$svc.build.log" 2>&1; then
    tail -n 30 "$LOGS/$svc.build.log" >&2
    die "building $image failed; see $LOGS/$svc.build.log"
  fi
  size="$(image_size "$image:$TAG")"
  step "$svc: $image:$TAG built in $((SECONDS - t0))s ($size)"
done
