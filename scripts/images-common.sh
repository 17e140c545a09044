# shellcheck shell=bash
# What every image build shares, sourced by scripts/images.sh (the services' images) and
# scripts/images-deps.sh (the chart's bundled dependencies): settings, progress lines, the
# engine command line, and the base image, made here once since no registry can be reached.
#
# Settings: CINEPULSE_IMAGE_ENGINE (podman; docker works with a public CINEPULSE_BASE_IMAGE),
# CINEPULSE_BASE_IMAGE (default: the local base with podman, python:3.11-slim-bookworm with
# docker), CINEPULSE_CACHE (~/.cache/cinepulse).

step() { printf '==> [images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  printf 'images: %s\n' "$*" >&2
  exit 1
}

CACHE="${CINEPULSE_CACHE:-$HOME/.cache/cinepulse}"
ENGINE="${CINEPULSE_IMAGE_ENGINE:-podman}"
LOCAL_BASE="localhost/cinepulse/base:bookworm-python3.11"
STAGE="build/images"
LOGS="build/images-logs"

# -- the engine -----------------------------------------------------------------------
command -v "$ENGINE" >/dev/null || die "$ENGINE is not installed. Images are optional (make setup does not need them); on Debian: apt-get install podman runc debootstrap"
ENGINE_ARGS=()
BUILD_ARGS=()
if [ "$ENGINE" = podman ]; then
  # this VM's hybrid cgroups: crun refuses them, runc runs; no default ulimits to apply
  if [ -z "${CONTAINERS_CONF:-}" ]; then
    mkdir -p "$CACHE/images"
    printf '[containers]\ndefault_ulimits = []\n' >"$CACHE/images/containers.conf"
    export CONTAINERS_CONF="$CACHE/images/containers.conf"
  fi
  command -v runc >/dev/null || die "runc is not installed (crun cannot run on this machine's cgroups): apt-get install runc"
  ENGINE_ARGS=(--runtime runc)
  BUILD_ARGS=(--layers)
fi
engine() { "$ENGINE" "${ENGINE_ARGS[@]}" "$@"; }

# "123 MB": an image's size, for the last progress line of its build
image_size() { engine image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }

# -- the base image ---------------------------------------------------------------------
# Sets BASE_IMAGE: CINEPULSE_BASE_IMAGE, the public python:3.11-slim-bookworm with docker, or
# with podman a Debian bookworm made with `debootstrap --variant=minbase` (+ python3,
# python3-venv) and `podman import`ed; its root filesystem is cached as a tarball.
ensure_base_image() {
  BASE_IMAGE="${CINEPULSE_BASE_IMAGE:-}"
  if [ -n "$BASE_IMAGE" ]; then
    step "base image $BASE_IMAGE (CINEPULSE_BASE_IMAGE)"
    return 0
  fi
  if [ "$ENGINE" != podman ]; then
    BASE_IMAGE="python:3.11-slim-bookworm"
    return 0
  fi
  BASE_IMAGE="$LOCAL_BASE"
  local rootfs_tar="$CACHE/images/bookworm-minbase-python3.11.tar" rootfs
  if engine image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    step "base image $BASE_IMAGE present"
    return 0
  fi
  if [ ! -s "$rootfs_tar" ]; then
    command -v debootstrap >/dev/null || die "debootstrap is not installed: apt-get install debootstrap"
    step "debootstrap --variant=minbase bookworm (+ python3, python3-venv) into $rootfs_tar"
    mkdir -p "$CACHE/images" "$LOGS"
    rootfs="$(mktemp -d "$CACHE/images/rootfs.XXXXXX")"
    # shellcheck disable=SC2064 # the path is fixed now, on purpose
    trap "rm -rf '$rootfs'" EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$rootfs" http://deb.debian.org/debian >"$LOGS/debootstrap.log" 2>&1 ||
      die "debootstrap failed; see $LOGS/debootstrap.log"
    printf 'deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
      >"$rootfs/etc/apt/sources.list"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" -cf "$rootfs_tar.tmp" . && mv "$rootfs_tar.tmp" "$rootfs_tar"
    rm -rf "$rootfs"
    trap - EXIT
  fi
  step "podman import $rootfs_tar as $BASE_IMAGE"
  engine import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$rootfs_tar" "$BASE_IMAGE" >/dev/null
}
