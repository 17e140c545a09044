#!/bin/sh
# Final stage of every Cinepulse image: the Debian packages a service needs at run time
# (its arguments; none for most), the non-root user cinepulse (10001:10001), and the
# folders that user may write to when the root filesystem is writable (with a read-only
# root, the chart mounts emptyDirs there: see docs/operations/images.md).
set -eu
UID_GID=10001

if [ "$#" -gt 0 ]; then
  # openjdk's postinst wants the man folders that slim images leave out
  mkdir -p /usr/share/man/man1
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  apt-get clean
  rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log
fi

groupadd --gid "$UID_GID" cinepulse
# --no-log-init: no sparse lastlog entry for a high uid
useradd --uid "$UID_GID" --gid "$UID_GID" --no-log-init --create-home \
  --home-dir /home/cinepulse --shell /usr/sbin/nologin cinepulse
