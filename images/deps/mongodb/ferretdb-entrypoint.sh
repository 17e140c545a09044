#!/bin/bash
# The mongodb image's entrypoint: FerretDB with the official mongo image's root user variables.
#
# FerretDB 1.24 on SQLite by default ignores credentials: it offers only the PLAIN mechanism
# (meant to pass them to a PostgreSQL backend) and accepts any password, and a client asking
# for SCRAM (pymongo, for the chart's `mongodb://user:pw@host:27017/?authSource=admin`) is
# refused with "Unsupported authentication mechanism". Its experimental new authentication
# (--test-enable-new-auth) stores SCRAM-SHA-1/256 users in the admin database and checks them
# on every command that is not anonymous (hello, ping, ... stay open, as in MongoDB); with
# --setup-database/--setup-username/--setup-password it creates the first user on the first
# start (only while the database does not exist yet).
#
# So, as the official image does with MONGO_INITDB_ROOT_USERNAME/PASSWORD: both set, that user
# is created once in `admin` and every client must authenticate (a wrong password is refused);
# neither set, no authentication at all; one alone is an error. Changing the password later
# changes nothing (again as in the official image): the user was made on the first start.
#
#   ferretdb-entrypoint [FLAG...]   FerretDB in the foreground (flags added to the image's)
#   ferretdb-entrypoint ping        exit 0 when an authenticated ping on this container's port
#                                   succeeds (a readiness probe; FerretDB has no mongosh)
#   ferretdb-entrypoint CMD...      CMD, as given
set -euo pipefail

user="${MONGO_INITDB_ROOT_USERNAME:-}"
password="${MONGO_INITDB_ROOT_PASSWORD:-}"
if [ -n "$user" ] && [ -n "$password" ]; then
  # through the environment, not flags: no password on a command line (ps, /proc)
  export FERRETDB_TEST_ENABLE_NEW_AUTH=true FERRETDB_SETUP_DATABASE=admin \
    FERRETDB_SETUP_USERNAME="$user" FERRETDB_SETUP_PASSWORD="$password"
elif [ -n "$user$password" ]; then
  echo "ferretdb-entrypoint: set both MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD, or neither (no authentication)" >&2
  exit 1
fi

case "${1:-}" in
  "" | -*) set -- ferretdb "$@" ;;
  # without a user there is nothing to authenticate: FerretDB's ping then only logs "skipping"
  ping) set -- ferretdb ping --setup-timeout=4s "${@:2}" ;;
esac
if [ "$1" = ferretdb ] && [ "${2:-}" != ping ]; then
  auth="no authentication"
  [ -z "$user" ] || auth="SCRAM authentication, user $user in admin"
  echo "ferretdb-entrypoint: FerretDB, ${FERRETDB_SQLITE_URL:-}, $auth" >&2
fi
exec "$@"
