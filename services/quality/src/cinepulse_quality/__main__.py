"""``cinepulse-quality``: data-quality checks over every copy of the user events.

  cinepulse-quality reconcile [--from T] [--to T] [--acknowledged FILE]
      the records whose Kafka timestamp is in [from, to) (default: the hour ending
      CINEPULSE_GRACE_S before now), each accounted for in MongoDB (raw document or dead
      letter) and PostgreSQL (staging row and fact, quarantine, a kept duplicate, or a
      fact promoted from a fallback run; a run awaiting promotion is reported); with
      --acknowledged, a file of event ids a client was acknowledged (one per line), each
      must be among the records

Times are ISO 8601; one without an offset is UTC. A table goes to stderr, one JSON line to
stdout, and with CINEPULSE_PUSHGATEWAY_URL the ``cinepulse_quality_*`` metrics to the
Pushgateway. Configuration: CINEPULSE_KAFKA__BOOTSTRAP_SERVERS, CINEPULSE_POSTGRES__DSN,
CINEPULSE_MONGO__URL (and CINEPULSE_MONGO__DATABASE, CINEPULSE_COLLECTION, ...).

Exit codes: 0 every record accounted for; 1 drift (the differences are listed); 2 bad
arguments or configuration; 4 Kafka, MongoDB or PostgreSQL unreachable or too slow.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from confluent_kafka import KafkaException
from pymongo.errors import PyMongoError

from cinepulse_common.jobs import instant, push_metrics
from cinepulse_common.logging import configure_logging, get_logger
from cinepulse_common.mongo import make_client
from cinepulse_common.postgres import connect
from cinepulse_common.settings import load_settings
from cinepulse_quality import metrics
from cinepulse_quality.reconcile import DRIFT_KINDS, Observed, Report, compare
from cinepulse_quality.settings import QualitySettings
from cinepulse_quality.sources import ReadTimeout, read_kafka, read_mongo, read_postgres

log = get_logger("cinepulse_quality")

EXIT_OK, EXIT_DRIFT, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 4


class UsageError(ValueError):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cinepulse-quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("reconcile", help="account for every record of a time window")
    rec.add_argument("--from", dest="start", type=instant, help="Kafka timestamp >=")
    rec.add_argument("--to", dest="end", type=instant, help="Kafka timestamp <")
    rec.add_argument(
        "--acknowledged", type=Path, help="file of acknowledged event ids, one per line"
    )
    rec.add_argument("--max-examples", type=int, help="positions listed per difference")
    return parser


def read_acknowledged(path: Path) -> set[str]:
    """Event ids, one per line (blank lines and ``#`` comments skipped), as canonical UUIDs."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read --acknowledged {path}: {exc.strerror}") from None
    ids = set()
    for n, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            ids.add(str(uuid.UUID(text)))
        except ValueError:
            raise UsageError(f"{path}:{n}: {text[:60]!r} is not an event id (UUID)") from None
    return ids


def window(
    settings: QualitySettings, start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    end = end or now - timedelta(seconds=settings.grace_s)
    start = start or end - timedelta(seconds=settings.window_s)
    if start >= end:
        raise UsageError(f"--from ({start.isoformat()}) must be before --to ({end.isoformat()})")
    if end > now - timedelta(seconds=settings.grace_s):
        log.warning(
            "the window ends within the grace period: records may still be in flight",
            to=end.isoformat(),
            grace_s=settings.grace_s,
        )
    return start, end


def reconcile(
    settings: QualitySettings,
    start: datetime,
    end: datetime,
    acknowledged: set[str] | None = None,
    max_examples: int | None = None,
) -> Report:
    """Read every store for the window and compare (raises on an unreachable store)."""
    records, dead = read_kafka(
        settings.kafka, settings.group_id, start, end, settings.read_timeout_s
    )
    observed = Observed(records=records, dead_lettered=dead, acknowledged=acknowledged)
    log.info("kafka read", records=len(records), dead_letters=len(dead))
    with make_client(settings.mongo) as client:
        collection = client[settings.mongo.database][settings.collection]
        observed.archived = read_mongo(
            collection, [r.position for r in records], settings.mongo_lookup
        )
    with connect(settings.postgres) as conn:
        conn.read_only = True
        read_postgres(conn, observed)
    return compare(
        observed,
        start,
        end,
        max_examples=settings.max_examples if max_examples is None else max_examples,
    )


def summary(report: Report) -> str:
    lines = [
        f"reconciliation {report.start.isoformat()} .. {report.end.isoformat()}: "
        + ("DRIFT" if report.drift else "every record accounted for"),
    ]
    lines += [f"  {k:<28} {v:>10,}" for k, v in report.counts.items()]
    for kind, n in report.differences.items():
        mark = "!" if kind in DRIFT_KINDS and n else " "
        lines.append(f"{mark} {kind:<28} {n:>10,}")
        for example in report.examples.get(kind, [])[:5]:
            lines.append(f"      {example}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging("cinepulse-quality")
    try:
        settings = load_settings(QualitySettings)
        acknowledged = read_acknowledged(args.acknowledged) if args.acknowledged else None
        if args.max_examples is not None and args.max_examples < 0:
            raise UsageError("--max-examples must be 0 or more")
        start, end = window(settings, args.start, args.end, datetime.now(UTC))
    except (UsageError, SystemExit) as exc:
        print(f"cinepulse-quality: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = reconcile(settings, start, end, acknowledged, args.max_examples)
    except (KafkaException, ReadTimeout, PyMongoError, psycopg.OperationalError) as exc:
        print(f"cinepulse-quality: a store is unreachable: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    metrics.record(report)
    print(summary(report), file=sys.stderr)
    print(json.dumps(report.as_dict()))
    if settings.pushgateway_url:
        push_metrics(settings.pushgateway_url, "cinepulse-quality", metrics.REGISTRY)
    return EXIT_DRIFT if report.drift else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
