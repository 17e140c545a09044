"""``cinepulse-migrate``: apply, roll back and inspect warehouse migrations."""

from __future__ import annotations

import argparse
import sys
from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from cinepulse_common.settings import CinepulseSettings, PostgresSettings, load_settings
from cinepulse_migrations.logins import ensure_service_logins, passwords_from_env


class MigrateSettings(CinepulseSettings):
    postgres: PostgresSettings


def sqlalchemy_url(dsn: str) -> str:
    """libpq URI -> SQLAlchemy URL on the psycopg 3 driver."""
    url = make_url(dsn)
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def alembic_config(dsn: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("cinepulse_migrations")))
    # ConfigParser interpolates '%': escape it so passwords with '%' survive
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    return cfg


def upgrade(dsn: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cinepulse-migrate", description=__doc__)
    parser.add_argument("--dsn", help="libpq URI (default: CINEPULSE_POSTGRES__DSN)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("upgrade", help="apply migrations up to REVISION (default head)")
    up.add_argument("revision", nargs="?", default="head")
    down = sub.add_parser("downgrade", help="roll back to REVISION (e.g. -1 or base)")
    down.add_argument("revision")
    sub.add_parser("current", help="show the applied revision")
    sub.add_parser("history", help="list every revision")
    args = parser.parse_args(argv)

    dsn = args.dsn or load_settings(MigrateSettings).postgres.dsn.get_secret_value()
    cfg = alembic_config(dsn)
    try:
        if args.cmd == "upgrade":
            command.upgrade(cfg, args.revision)
            # the services' logins (migration 0012's groups), when the job has their passwords
            passwords = passwords_from_env()
            if passwords:
                made = ensure_service_logins(dsn, passwords)
                print(f"cinepulse-migrate: logins {', '.join(made)}", file=sys.stderr)
        elif args.cmd == "downgrade":
            command.downgrade(cfg, args.revision)
        elif args.cmd == "current":
            command.current(cfg, verbose=True)
        else:
            command.history(cfg, verbose=False)
    except Exception as exc:  # report any failure as one line and a non-zero exit
        print(f"cinepulse-migrate: {args.cmd} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
