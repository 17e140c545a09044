#!/bin/sh
# Builder stages of every Cinepulse image, from wheels only: pip reaches no package index
# inside a build (docs/architecture.md); scripts/images.sh staged the wheels on the host.
#
#   build-venv.sh deps DIR   /opt/venv: the third-party packages of DIR/requirements.txt
#                            (the locked closure from uv.lock), without pip
#   build-venv.sh app DIR    /opt/app: the workspace packages' wheels in DIR (the shared
#                            library and the service), on /opt/venv's path (a .pth file);
#                            console scripts in /opt/app/bin
#
# Two layers on purpose: a code change rebuilds only the small /opt/app, not the venv.
# `python3 -m venv` works on both bases: python:3.11-slim-bookworm (/usr/local/bin/python3)
# and the local debootstrap image (Debian's /usr/bin/python3 with python3-venv).
set -eu
VENV=/opt/venv
APP=/opt/app

case "${1:-}" in
  deps)
    python3 -m venv "$VENV"
    # --no-deps: the requirement set is already the complete, pinned closure
    "$VENV/bin/pip" install --no-cache-dir --disable-pip-version-check --no-index --no-deps \
      --find-links "$2" -r "$2/requirements.txt"
    "$VENV/bin/pip" uninstall --yes --quiet pip setuptools
    echo "$APP" >"$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/cinepulse-app.pth"
    ;;
  app)
    # a throwaway pip, run for the venv's interpreter (script shebangs: /opt/venv/bin/python)
    python3 -m venv /tmp/pip
    /tmp/pip/bin/pip --python "$VENV/bin/python" install --no-cache-dir \
      --disable-pip-version-check --no-index --no-deps --target "$APP" "$2"/*.whl
    rm -rf /tmp/pip
    ;;
  *)
    echo "usage: build-venv.sh deps|app DIR" >&2
    exit 2
    ;;
esac
