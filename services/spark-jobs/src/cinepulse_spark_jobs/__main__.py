"""``cinepulse-spark-jobs``: the Spark jobs' entry point (the SparkApplication's main file).

  cinepulse-spark-jobs stream                    both streaming queries (events, movies)
  cinepulse-spark-jobs stream --query events     one of them
  cinepulse-spark-jobs stream --available-now    read what is there, write it, stop
  cinepulse-spark-jobs aggregate                 daily aggregates of the dates that changed
  cinepulse-spark-jobs aggregate --from 2026-11-01 --to 2026-11-26
  cinepulse-spark-jobs aggregate --lock-wait 600 wait up to 10 min for a running aggregates run

Configuration: CINEPULSE_* variables (Kafka, PostgreSQL, CINEPULSE_CHECKPOINT_DIR,
CINEPULSE_MASTER, CINEPULSE_JARS_DIR). Exit codes: 0 stopped cleanly, 1 a query or the job
failed, 2 bad arguments or configuration, 3 (aggregate) another aggregates run holds the
lock (after --lock-wait seconds, default 0): nothing was done, try again later.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from datetime import date

from cinepulse_common.logging import configure_logging, get_logger
from cinepulse_common.rules import active_rules
from cinepulse_common.settings import load_settings
from cinepulse_spark_jobs.jars import JarsError
from cinepulse_spark_jobs.settings import SparkJobsSettings

log = get_logger("cinepulse_spark_jobs")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cinepulse-spark-jobs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="job", required=True)
    stream = sub.add_parser("stream", help="Kafka into the star schema (streaming)")
    stream.add_argument(
        "--query",
        choices=["events", "movies", "all"],
        default="all",
        help="which query to run (default: both, in one driver)",
    )
    stream.add_argument("--available-now", action="store_true", help="process the backlog, stop")
    agg = sub.add_parser("aggregate", help="the daily aggregates the api reads (batch)")
    agg.add_argument("--from", dest="date_from", type=date.fromisoformat, help="first day")
    agg.add_argument("--to", dest="date_to", type=date.fromisoformat, help="last day")
    agg.add_argument(
        "--lock-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another aggregates run to finish (default 0: exit 3 at once)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.job == "aggregate" and (args.date_from is None) != (args.date_to is None):
        parser.error("--from and --to go together (or neither: the dates that changed)")
    if args.job == "aggregate" and args.date_from and args.date_from > args.date_to:
        parser.error(f"--from {args.date_from} is after --to {args.date_to}")

    settings = load_settings(SparkJobsSettings)
    configure_logging("spark-jobs", settings.log_level, settings.log_json)
    if args.job == "stream" and settings.kafka is None:
        print("cinepulse-spark-jobs stream: CINEPULSE_KAFKA__BOOTSTRAP_SERVERS is not set "
              "(the streaming job reads Kafka)", file=sys.stderr)  # fmt: skip
        return 2
    from cinepulse_spark_jobs.session import make_spark

    try:
        spark = make_spark(settings, f"cinepulse-{args.job}")
    except JarsError as exc:
        print(f"cinepulse-spark-jobs: {exc}", file=sys.stderr)
        return 2
    spark.sparkContext.setLogLevel("WARN")
    if args.job == "aggregate":
        from cinepulse_spark_jobs.aggregates import EXIT_LOCKED, AggregatesLocked, run_aggregates

        try:
            summary = run_aggregates(
                spark, settings, args.date_from, args.date_to, lock_wait_s=args.lock_wait
            )
        except AggregatesLocked as exc:
            log.warning("aggregates not run: locked", error=str(exc))
            print(f"cinepulse-spark-jobs aggregate: {exc}", file=sys.stderr)
            return EXIT_LOCKED
        except Exception as exc:
            log.error("aggregates failed", error=str(exc)[:2000])
            print(f"cinepulse-spark-jobs aggregate: failed: {exc}", file=sys.stderr)
            return 1
        finally:
            spark.stop()
        print(summary.line())
        return 0
    return _stream(spark, settings, args.query, args.available_now)


def _stream(spark: object, settings: SparkJobsSettings, which: str, available_now: bool) -> int:
    from cinepulse_common.observability import start_metrics_server
    from cinepulse_spark_jobs.failures import on_query_failed, watch_for_data_loss
    from cinepulse_spark_jobs.metrics import MetricsListener
    from cinepulse_spark_jobs.stream import QUERIES, start_stream

    spark.streams.addListener(MetricsListener())  # type: ignore[attr-defined]
    if settings.metrics_port:
        start_metrics_server(settings.metrics_port)
    rules = active_rules()
    names = QUERIES if which == "all" else (which,)
    watch_for_data_loss(list(names))
    queries = [
        start_stream(spark, settings, rules, name, available_now=available_now)  # type: ignore[arg-type]
        for name in names
    ]
    log.info("queries started", queries=list(names), checkpoint=str(settings.checkpoint_dir))

    def stop(signum: int, _frame: object) -> None:
        log.info("stopping the queries", signal=signum)
        for q in queries:
            q.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = False
    manager = spark.streams  # type: ignore[attr-defined]
    while any(q.isActive for q in queries) and not failed:
        # a failed query raises here; its exception is read below
        with contextlib.suppress(Exception):
            manager.awaitAnyTermination()
        manager.resetTerminated()
        for q in queries:
            error = None if q.isActive else q.exception()
            if error is not None:
                # one query failing stops the driver: the operator restarts it (Always)
                on_query_failed(q.name, error, settings.pushgateway_url)
                failed = True
    for q in queries:
        q.stop()
    spark.stop()  # type: ignore[attr-defined]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
