"""``python -m cinepulse_devstack.tmdb_offline``: the same as ``cinepulse-tmdb-offline``."""

from cinepulse_devstack.tmdb_offline.app import main

if __name__ == "__main__":
    raise SystemExit(main())
