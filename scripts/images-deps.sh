# shellcheck shell=bash
# The images of the chart's bundled dependencies, sourced by scripts/images.sh
# (`scripts/images.sh deps`, `make images-deps`, or by name: `scripts/images.sh kafka`).
# No registry can be reached here, so each is built from the local Debian bookworm base
# (scripts/images-common.sh) and what `make setup` already fetched:
#
#   localhost/cinepulse/kafka:<kafka version>        Kafka jars (Maven Central) + Debian's JRE 17
#   localhost/cinepulse/postgres:15                  Debian's postgresql-15
#   localhost/cinepulse/mongodb:<FerretDB version>   FerretDB (Go module proxy; SQLite backend)
#   localhost/cinepulse/prometheus:<version>         Debian's prometheus
#   localhost/cinepulse/pushgateway:<version>        Debian's prometheus-pushgateway
#
# Each is images/deps/<name>/Dockerfile with the repository as the context (.dockerignore
# lets through images/ and build/images/); artefacts are staged in build/images/<name>/.
# The Kafka and FerretDB versions are the local stack's (cinepulse_devstack/config.py), so
# the chart and `make up` run the same ones; the Debian ones are bookworm's, checked at build.
# Expects from scripts/images-common.sh: step, die, engine, image_size, BUILD_ARGS,
# BASE_IMAGE, CACHE, STAGE, LOGS.

# always under localhost/ (as podman names local images; kind.sh passes localhost/cinepulse)
DEPS_REPO="${CINEPULSE_IMAGE_REPO:-cinepulse}"
DEPS_REPO="localhost/${DEPS_REPO#localhost/}"

# one pin per version: the local stack's settings, read without its Python environment
stack_setting() {
  local value
  value="$(sed -n "s/^    $1: str = \"\(.*\)\"$/\1/p" libs/cinepulse-devstack/src/cinepulse_devstack/config.py)"
  [ -n "$value" ] || die "no $1 in libs/cinepulse-devstack/src/cinepulse_devstack/config.py"
  printf '%s' "$value"
}
KAFKA_VERSION="$(stack_setting kafka_version)"
FERRETDB_VERSION="$(stack_setting ferretdb_version)"
# Debian bookworm's upstream versions (the Dockerfiles fail if the package has another)
POSTGRES_MAJOR=15
PROMETHEUS_VERSION=2.42.0
PUSHGATEWAY_VERSION=1.5.1

dep_tag() {
  case "$1" in
    kafka) echo "$KAFKA_VERSION" ;;
    postgres) echo "$POSTGRES_MAJOR" ;;
    mongodb) echo "${FERRETDB_VERSION#v}" ;; # FerretDB's version (the image says so)
    prometheus) echo "$PROMETHEUS_VERSION" ;;
    pushgateway) echo "$PUSHGATEWAY_VERSION" ;;
    *) die "unknown dependency image '$1'" ;;
  esac
}

# The build context's artefacts: copies (cp -p: same bytes and times, so the COPY layers of
# an unchanged artefact stay cached) of what `make setup` put in the cache.
stage_dep() {
  local name="$1" ctx="$STAGE/$1" src
  rm -rf "$ctx"
  mkdir -p "$ctx"
  case "$name" in
    kafka)
      src="$CACHE/kafka-$KAFKA_VERSION"
      [ -f "$src/.complete" ] && [ -d "$src/libs" ] ||
        die "the Kafka $KAFKA_VERSION jars are missing in $src/libs: run make setup"
      cp -rp "$src/libs" "$ctx/libs"
      ;;
    mongodb)
      src="$CACHE/ferretdb-$FERRETDB_VERSION/ferretdb"
      [ -x "$src" ] || die "the FerretDB $FERRETDB_VERSION binary is missing ($src): run make setup"
      cp -p "$src" "$ctx/ferretdb"
      ;;
  esac
}

build_dep() {
  local name="$1" tag image t0=$SECONDS
  tag="$(dep_tag "$name")"
  image="$DEPS_REPO/$name:$tag"
  mkdir -p "$LOGS"
  stage_dep "$name"
  step "$name: $ENGINE build $image (log: $LOGS/$name.build.log)"
  if ! engine build "${BUILD_ARGS[@]}" --network host --file "images/deps/$name/Dockerfile" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "VERSION=$tag" \
    --tag "$image" . >"$LOGS/$name.build.log" 2>&1; then
    tail -n 30 "$LOGS/$name.build.log" >&2
    die "building $image failed; see $LOGS/$name.build.log"
  fi
  step "$name: $image built in $((SECONDS - t0))s ($(image_size "$image"))"
}
