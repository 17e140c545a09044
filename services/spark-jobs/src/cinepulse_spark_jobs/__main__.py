"""``cinepulse-spark-jobs``: the Spark jobs' entry point (the SparkApplication's main file).

  cinepulse-spark-jobs staging                 stream Kafka user events into staging
  cinepulse-spark-jobs staging --available-now read what is there, write it, stop

Configuration: CINEPULSE_* variables (Kafka, PostgreSQL, CINEPULSE_CHECKPOINT_DIR,
CINEPULSE_MASTER, CINEPULSE_JARS_DIR). Exit codes: 0 stopped cleanly, 1 the query failed,
2 bad configuration.
"""

from __future__ import annotations

import argparse
import signal
import sys

from cinepulse_common.logging import configure_logging, get_logger
from cinepulse_common.rules import active_rules
from cinepulse_common.settings import load_settings
from cinepulse_spark_jobs.jars import JarsError
from cinepulse_spark_jobs.settings import SparkJobsSettings

log = get_logger("cinepulse_spark_jobs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cinepulse-spark-jobs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="job", required=True)
    staging = sub.add_parser("staging", help="Kafka user events into staging and quarantine")
    staging.add_argument("--available-now", action="store_true", help="process the backlog, stop")
    args = parser.parse_args(argv)

    settings = load_settings(SparkJobsSettings)
    configure_logging("spark-jobs", settings.log_level, settings.log_json)
    from cinepulse_spark_jobs.session import make_spark
    from cinepulse_spark_jobs.staging import start_staging_stream

    try:
        spark = make_spark(settings, f"cinepulse-{args.job}")
    except JarsError as exc:
        print(f"cinepulse-spark-jobs: {exc}", file=sys.stderr)
        return 2
    spark.sparkContext.setLogLevel("WARN")
    from cinepulse_common.observability import start_metrics_server
    from cinepulse_spark_jobs.metrics import MetricsListener

    spark.streams.addListener(MetricsListener())
    if settings.metrics_port:
        start_metrics_server(settings.metrics_port)
    query = start_staging_stream(spark, settings, active_rules(), available_now=args.available_now)
    log.info("query started", job=args.job, checkpoint=str(settings.checkpoint_dir))

    def stop(signum: int, _frame: object) -> None:
        log.info("stopping the query", signal=signum)
        query.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    query.awaitTermination()
    error = query.exception()
    spark.stop()
    if error is not None:
        log.error("query failed", error=str(error)[:2000])
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
