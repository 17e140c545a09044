#!/bin/bash
# The PostgreSQL image's entrypoint: the official postgres image's interface, as far as the
# chart uses it (charts/cinepulse/templates/postgresql/postgresql-statefulset.yaml).
#
# * First start (no PG_VERSION in PGDATA): initdb with POSTGRES_USER (default postgres) as
#   the superuser whose password is POSTGRES_PASSWORD (required), scram-sha-256;
#   POSTGRES_INITDB_ARGS are added. pg_hba.conf: the Unix socket, reachable only inside the
#   container, is trusted (as in the official image: probes and `psql` in the pod); every TCP
#   client, from anywhere, authenticates with its password. listen_addresses = '*'.
#   POSTGRES_DB (default: POSTGRES_USER) is created, in single-user mode, so no server ever
#   listens before the cluster is complete.
# * Then `postgres` in the foreground as PID 1. Arguments starting with `-` are postgres
#   options (`-c shared_buffers=256MB`); another command runs as given.
# Not supported (the chart uses none): /docker-entrypoint-initdb.d, POSTGRES_PASSWORD_FILE,
# POSTGRES_HOST_AUTH_METHOD, an arbitrary uid without a passwd entry.
set -euo pipefail

die() {
  printf 'postgres-entrypoint: %s\n' "$*" >&2
  exit 1
}

[ $# -gt 0 ] || set -- postgres
[ "${1:0:1}" != - ] || set -- postgres "$@"
[ "$1" = postgres ] || exec "$@"
[ "$(id -u)" != 0 ] || die "runs as the postgres user (999), not root: podman run --user 999:999 / runAsUser: 999"

: "${PGDATA:?PGDATA is not set (the image sets /var/lib/postgresql/data)}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] ||
    die "POSTGRES_PASSWORD is not set: the superuser '$user' needs a password (-e POSTGRES_PASSWORD=...)"
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA" 2>/dev/null || true # a volume's root may not be ours to chmod
  echo "postgres-entrypoint: initdb $PGDATA (superuser $user, database $db)" >&2
  # the password through a pipe: never in a file or on a command line
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options
  initdb --pgdata="$PGDATA" --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
  cat >"$PGDATA/pg_hba.conf" <<'HBA'
# TYPE  DATABASE  USER  ADDRESS  METHOD
# the socket, inside the container only (probes, psql in the pod)
local   all       all            trust
# every TCP client, from anywhere, with its password
host    all       all   all      scram-sha-256
HBA
  printf "\n# postgres-entrypoint\nlisten_addresses = '*'\npassword_encryption = scram-sha-256\n" \
    >>"$PGDATA/postgresql.conf"
  if [ "$db" != postgres ]; then
    # an identifier in double quotes, its own double quotes doubled
    printf 'CREATE DATABASE "%s"\n' "${db//\"/\"\"}" |
      postgres --single -D "$PGDATA" -c exit_on_error=on postgres >/dev/null ||
      die "creating the database '$db' failed"
  fi
fi

exec "$@"
