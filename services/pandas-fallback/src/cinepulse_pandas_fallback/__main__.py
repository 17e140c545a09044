"""``cinepulse-fallback``: the pandas fallback of the Spark path, its promotion, and replays.

  cinepulse-fallback run --from 2026-11-26T08:00Z --to 2026-11-26T10:00Z [--chunk-size N]
                         [--extend RUN_ID]
      raw events that *arrived* (archiver's received_at) in [from, to) -> fallback schema;
      --extend adds the window to that succeeded run (one run per outage; --from at or
      before its end; an empty value starts a new run)
  cinepulse-fallback runs [--limit N]
      the latest runs (fallback and replay), their status and promotions
  cinepulse-fallback promote RUN_ID... [--dry-run] [--by NAME]
      succeeded fallback runs -> the main facts (Spark's facts stay); --dry-run counts
  cinepulse-fallback promote --all-pending [--apply] [--by NAME]
      every run awaiting promotion, oldest first: a dry run that lists them and counts their
      rows unless --apply; with none pending, says so and exits 0 (idempotent)
  cinepulse-fallback replay --from ... --to ... [--chunk-size N]
      reprocess raw events (and the movie topic's records, into dim_movie) straight into the
      main tables (after a bug fix); idempotent

Times are ISO 8601; one without an offset is UTC. Progress goes to stderr, one JSON summary
line to stdout. Configuration: CINEPULSE_POSTGRES__DSN, CINEPULSE_MONGO__URL (and
CINEPULSE_MONGO__DATABASE, CINEPULSE_CHUNK_SIZE, CINEPULSE_PUSHGATEWAY_URL, ...).

Exit codes: 0 done; 1 the run failed (recorded as failed, nothing of it visible; a failed
extension leaves its run as it was); 2 bad arguments or configuration; 3 unknown run, or a
run that cannot be promoted or extended; 4 MongoDB or PostgreSQL unreachable.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

import psycopg
from pymongo.errors import PyMongoError

from cinepulse_common.jobs import instant
from cinepulse_common.logging import configure_logging, get_logger
from cinepulse_common.mongo import check_mongo
from cinepulse_common.postgres import check_postgres
from cinepulse_common.rules import RulesError, active_rules
from cinepulse_common.settings import load_settings
from cinepulse_pandas_fallback import metrics
from cinepulse_pandas_fallback.settings import PandasFallbackSettings

log = get_logger("cinepulse_pandas_fallback")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_RUN, EXIT_UNREACHABLE = 0, 1, 2, 3, 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cinepulse-fallback",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (
        ("run", "a fallback run into the fallback schema"),
        ("replay", "reprocess raw events into the main tables"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--from", dest="start", type=instant, required=True, help="arrived at >=")
        p.add_argument("--to", dest="end", type=instant, required=True, help="arrived before")
        p.add_argument("--chunk-size", type=int, help="documents per chunk (memory bound)")
        p.add_argument("--by", help="who asked for it (default: the OS user)")
        if name == "run":
            p.add_argument(
                "--extend", metavar="RUN_ID", help="extend this succeeded run ('' = a new run)"
            )
    promote = sub.add_parser("promote", help="promote succeeded runs into the main facts")
    promote.add_argument("run_ids", nargs="*", metavar="RUN_ID")
    promote.add_argument(
        "--all-pending", action="store_true", help="every run awaiting promotion (dry run)"
    )
    mode = promote.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="count, change nothing")
    mode.add_argument("--apply", action="store_true", help="with --all-pending: promote them")
    promote.add_argument("--by", help="who promotes it (default: the OS user)")
    runs = sub.add_parser("runs", help="list the latest runs")
    runs.add_argument("--limit", type=int, default=20)
    return parser


def _reachable(settings: PandasFallbackSettings, mongo: bool) -> str | None:
    """Why PostgreSQL (or MongoDB) cannot be used, or None."""
    try:
        check_postgres(settings.postgres)
    except psycopg.Error as exc:
        return f"PostgreSQL unreachable: {str(exc).strip().splitlines()[0]}"
    if mongo:
        try:
            check_mongo(settings.mongo)
        except PyMongoError as exc:
            return f"MongoDB unreachable: {str(exc).split(',')[0]}"
    return None


def _print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("run", "replay"):
        if args.end <= args.start:
            parser.error(
                f"--from {args.start.isoformat()} is not before --to {args.end.isoformat()}"
            )
        if args.chunk_size is not None and args.chunk_size < 1:
            parser.error("--chunk-size must be at least 1")
    if args.command == "runs" and args.limit < 1:
        parser.error("--limit must be at least 1")
    if args.command == "promote":
        if args.all_pending == bool(args.run_ids):
            parser.error("give run ids or --all-pending (one of them)")
        if args.apply and not args.all_pending:
            parser.error("--apply goes with --all-pending (a named run is promoted as asked)")
    settings = load_settings(PandasFallbackSettings)
    configure_logging("pandas-fallback", settings.log_level, settings.log_json)
    prog = "cinepulse-fallback"
    problem = _reachable(settings, mongo=args.command in ("run", "replay"))
    if problem:
        print(f"{prog}: {problem}", file=sys.stderr)
        return EXIT_UNREACHABLE

    from cinepulse_pandas_fallback.runs import expire_abandoned

    for run_id in expire_abandoned(settings.postgres, settings.abandoned_after_s):
        print(
            f"{prog}: run {run_id} was abandoned (its process died); marked failed", file=sys.stderr
        )

    if args.command == "runs":
        from cinepulse_pandas_fallback.runs import list_runs

        for run in list_runs(settings.postgres, args.limit):
            _print_json(run)
        return EXIT_OK

    if args.command == "promote":
        return _promote(settings, args)

    from cinepulse_pandas_fallback.job import Kind, NotExtendable, RunFailed, run_window

    try:
        rules = active_rules()
    except RulesError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    kind: Kind = "fallback" if args.command == "run" else "replay"
    try:
        summary = run_window(
            settings,
            rules,
            args.start,
            args.end,
            kind=kind,
            requested_by=args.by or getpass.getuser(),
            chunk_size=args.chunk_size,
            extend=getattr(args, "extend", None) or None,
        )
        code = EXIT_OK
    except NotExtendable as exc:
        print(f"{prog} {args.command}: {exc}", file=sys.stderr)
        return EXIT_RUN
    except RunFailed as exc:
        summary = exc.summary
        print(f"{prog} {args.command}: {exc}", file=sys.stderr)
        code = EXIT_FAILED
    _print_json(summary.as_dict())
    if settings.pushgateway_url:
        metrics.push(settings.pushgateway_url, kind)
    return code


def _promotion_json(result: Any) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "dry_run": result.dry_run,
        "promoted_by": result.promoted_by,
        "promoted_at": result.promoted_at,
        "rows": result.rows,
    }


def _promote(settings: PandasFallbackSettings, args: argparse.Namespace) -> int:
    """``promote RUN_ID...`` (each as asked) or ``promote --all-pending`` (a dry run unless
    ``--apply``). One JSON line per run on stdout, the tables on stderr."""
    from cinepulse_pandas_fallback.runs import (
        NotPromotable,
        RunNotFound,
        pending_runs,
        promote,
        promote_pending,
    )

    prog = "cinepulse-fallback promote"
    by = args.by or getpass.getuser()
    if args.all_pending:
        dry_run = not args.apply
        pending = pending_runs(settings.postgres)
        if not pending:
            print(f"{prog}: no fallback run awaits promotion; nothing to do", file=sys.stderr)
            _print_json({"pending": 0, "dry_run": dry_run, "promoted": []})
            return EXIT_OK
        results = promote_pending(settings.postgres, by=by, dry_run=dry_run)
        for result in results:
            print(result.table(), file=sys.stderr)
            _print_json(_promotion_json(result))
        verb = "would promote" if dry_run else "promoted"
        print(
            f"{prog}: {verb} {len(results)} run(s): {' '.join(r.run_id for r in results)}"
            + ("\n  (a dry run: add --apply to promote them)" if dry_run else ""),
            file=sys.stderr,
        )
        return EXIT_OK
    code = EXIT_OK
    for run_id in args.run_ids:
        try:
            result = promote(settings.postgres, run_id, by=by, dry_run=args.dry_run)
        except (RunNotFound, NotPromotable) as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            code = EXIT_RUN
            continue
        print(result.table(), file=sys.stderr)
        _print_json(_promotion_json(result))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
