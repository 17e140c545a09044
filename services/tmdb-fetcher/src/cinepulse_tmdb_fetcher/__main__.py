"""``cinepulse-tmdb-fetcher``: the container's command (Airflow runs it).

  cinepulse-tmdb-fetcher full                 every movie discover lists (date windows)
  cinepulse-tmdb-fetcher incremental          movies changed since the watermark
  cinepulse-tmdb-fetcher ids 550 603 27205    the given movies

Exit codes: 0 done (not-found and malformed movies are counted, not failures);
2 bad configuration or arguments; 3 TMDB refused the credential (401); 4 TMDB unavailable
(retries exhausted); 5 a sink (Kafka, MongoDB, PostgreSQL) failed; 1 anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from cinepulse_common.jobs import push_metrics
from cinepulse_common.logging import configure_logging, get_logger
from cinepulse_common.observability import record_build_info
from cinepulse_common.settings import load_settings
from cinepulse_tmdb_fetcher import __version__, metrics
from cinepulse_tmdb_fetcher.bootstrap import build_fetcher
from cinepulse_tmdb_fetcher.client import TmdbAuthError, TmdbClient, TmdbUnavailable
from cinepulse_tmdb_fetcher.pipeline import Fetcher
from cinepulse_tmdb_fetcher.ports import SinkError
from cinepulse_tmdb_fetcher.progress import Counts
from cinepulse_tmdb_fetcher.settings import TmdbFetcherSettings

log = get_logger("cinepulse_tmdb_fetcher")

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_AUTH, EXIT_UNAVAILABLE, EXIT_SINK = 0, 1, 2, 3, 4, 5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cinepulse-tmdb-fetcher",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dry-run", action="store_true", help="fetch and check, write nothing")
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("full", help="every movie discover lists")
    sub.add_parser("incremental", help="movies changed since the watermark")
    ids = sub.add_parser("ids", help="the given movie ids")
    ids.add_argument("ids", nargs="+", type=int, metavar="MOVIE_ID")
    return parser.parse_args(argv)


async def run(settings: TmdbFetcherSettings, args: argparse.Namespace) -> tuple[int, Fetcher]:
    async with TmdbClient(settings.tmdb) as client:
        fetcher = build_fetcher(settings, client, dry_run=args.dry_run)
        started = datetime.now(UTC)
        fetcher.record_run(args.mode, "running", started=started)
        code, error = EXIT_OK, None
        try:
            if args.mode == "full":
                await fetcher.run_full()
            elif args.mode == "incremental":
                await fetcher.run_incremental()
            else:
                await fetcher.run_ids(args.ids)
        except* TmdbAuthError as group:
            code, error = EXIT_AUTH, str(group.exceptions[0])
        except* TmdbUnavailable as group:
            code, error = EXIT_UNAVAILABLE, str(group.exceptions[0])
        except* SinkError as group:
            code, error = EXIT_SINK, str(group.exceptions[0])
        finally:
            fetcher.close()
        fetcher.record_run(
            args.mode, "succeeded" if code == EXIT_OK else "failed", started=started, error=error
        )
        if error:
            log.error("run failed", mode=args.mode, error=error, exit_code=code)
            print(f"cinepulse-tmdb-fetcher: {error}", file=sys.stderr)
        return code, fetcher


def summary(mode: str, counts: Counts, seconds: float, extra: dict[str, Any]) -> str:
    rows = [(k, v) for k, v in counts.as_dict().items() if k != "not_found_ids"]
    rows += list(extra.items())
    width = max(len(k) for k, _ in rows)
    lines = [f"tmdb-fetcher {mode}: {seconds:.1f}s"]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    if counts.not_found_ids:
        lines.append(f"  not found: {', '.join(map(str, counts.not_found_ids[:20]))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = load_settings(TmdbFetcherSettings)
    configure_logging("tmdb-fetcher", settings.log_level, settings.log_json)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    record_build_info("tmdb-fetcher", __version__)
    t0 = time.monotonic()
    try:
        code, fetcher = asyncio.run(run(settings, args))
    except ValueError as exc:  # unreadable credential file
        print(f"cinepulse-tmdb-fetcher: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    seconds = time.monotonic() - t0
    extra = {
        "rate_limit_wait_s": round(fetcher.client.rate_wait_s, 2),
        "backoff_wait_s": round(fetcher.client.backoff_wait_s, 2),
        "dry_run": args.dry_run,
        "exit_code": code,
    }
    log.info(
        "run summary",
        mode=args.mode,
        seconds=round(seconds, 2),
        **fetcher.counts.as_dict(),
        **extra,
    )
    print(summary(args.mode, fetcher.counts, seconds, extra), file=sys.stderr)
    print(json.dumps({"mode": args.mode, **fetcher.counts.as_dict(), **extra}))
    if settings.pushgateway_url:
        push_metrics(settings.pushgateway_url, "cinepulse-tmdb-fetcher", metrics.REGISTRY)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
