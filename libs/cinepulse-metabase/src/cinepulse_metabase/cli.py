"""The command line: ``python -m cinepulse_metabase prepare-database | provision |
wait-database``, one JSON summary line on stdout, exit codes as documented in the package."""

from __future__ import annotations

import argparse
import json
import sys

import psycopg

from cinepulse_common.postgres import (
    RoleError,
)
from cinepulse_common.settings import load_settings
from cinepulse_metabase.client import provision
from cinepulse_metabase.database import prepare_database, wait_database
from cinepulse_metabase.settings import (
    ConfigError,
    MetabaseError,
    MetabaseSetupSettings,
    NotReady,
    _stderr,
)

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 4

# ------------------------------------------------------------------------------ CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cinepulse_metabase",
        description=sys.modules["cinepulse_metabase"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare-database", help="the reader role and Metabase's own database")
    sub.add_parser("provision", help="the first admin and the warehouse datasource, by API")
    wait = sub.add_parser("wait-database", help="wait for Metabase's application database")
    wait.add_argument("--timeout", type=float, help="seconds (default: wait for ever)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(MetabaseSetupSettings)
    except SystemExit as exc:  # load_settings names each bad variable
        print(exc.code, file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "prepare-database":
            summary = prepare_database(settings)
        elif args.command == "provision":
            summary = provision(settings)
        else:
            wait_database(settings, args.timeout)
            summary = {"database": "ready"}
    except ConfigError as exc:
        _stderr(f"{args.command}: {exc}")
        return EXIT_USAGE
    except NotReady as exc:
        _stderr(f"{args.command}: {exc}")
        return EXIT_UNREACHABLE
    except psycopg.OperationalError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        _stderr(f"{args.command}: PostgreSQL unreachable: {reason}")
        return EXIT_UNREACHABLE
    except (MetabaseError, RoleError, psycopg.Error) as exc:
        _stderr(f"{args.command}: {exc}")
        return EXIT_REFUSED
    except OSError as exc:  # Metabase went away after it was ready
        _stderr(f"{args.command}: Metabase unreachable: {exc}")
        return EXIT_UNREACHABLE
    print(json.dumps(summary, default=str))
    return EXIT_OK
