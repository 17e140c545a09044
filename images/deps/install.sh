#!/bin/sh
# Shared by the bundled dependencies' images (images/deps/*/Dockerfile), run as root at build
# time:  install.sh USER UID HOME [DEBIAN-PACKAGE...]
# Creates USER with UID as its uid and gid *before* the packages, so a package that makes its
# own system user (postgresql makes `postgres`) takes this one and the files it owns get the
# uid the chart's securityContext runs as. Then installs the packages from Debian bookworm
# (no registry here: apt is the one source that reaches a build) and drops apt's caches.
set -eu
user="$1" uid="$2" home="$3"
shift 3

if ! getent passwd "$uid" >/dev/null; then
  groupadd --gid "$uid" "$user"
  # --no-log-init: no sparse lastlog entry
  useradd --uid "$uid" --gid "$uid" --no-log-init --no-create-home --home-dir "$home" \
    --shell /usr/sbin/nologin "$user"
fi

if [ "$#" -gt 0 ]; then
  # openjdk's postinst wants the man folders that the minbase image leaves out
  mkdir -p /usr/share/man/man1 /usr/share/man/man7
  # no service starts inside a build (postinst scripts ask invoke-rc.d, which asks this)
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  apt-get clean
  rm -f /usr/sbin/policy-rc.d
  rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
    /usr/share/doc/* /usr/share/man/*
fi
