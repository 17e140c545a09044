"""Where one events micro-batch spends its time, stage by stage, on ``local[2]``.

``uv run --frozen --all-packages python -m bench.spark_profile --events 30000`` (under
``flock /tmp/cinepulse-stack.lock``: it starts Kafka and PostgreSQL if they are down, and
stops only what it started). It writes a backlog of :func:`bench.spark_stream.make_event`
events into private topics, reads it back as one batch (what one ``availableNow``
micro-batch of that size reads), and times each stage on the same data, each materialised
on its own (``persist`` + ``count``, or a ``noop`` write of the stage's output over a cached
input), so every second is attributable to one stage:

* Kafka read + parse (into the cache), as :func:`parse_events` and the batch's coalesce
  (and the read alone, not counted: how much of it is Kafka);
* validation, and dedup + normalisation, with the comment-normalisation UDF replaced by
  built-ins (``trim`` + whitespace collapse): the cost of the rules without Python;
* each pandas UDF alone: ``normalise_comment`` (both of its passes: the validation's length
  and the normalised text) and ``classify``;
* the whole transform as the stream runs it (real UDFs, :func:`transform_events`), for a
  check against the sum of its parts (not counted in the total);
* the JDBC landing (as :func:`process_events_batch` writes it) from the cached frames (the
  median of :data:`LANDING_RUNS`), then the load transaction
  (:func:`load_events_from_tables`);
* then, unless ``--no-end-to-end``, the whole :func:`process_events_batch` on the same batch
  into a second fresh database (the figure the stages should add up to).

A warm-up over a small slice first starts the Python workers and loads the classifier, as a
running stream has done before its steady state. The SparkSession and its JVM are stopped at
the end, on error too; the topics and databases are dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from bench.spark_session import spark_session
from bench.spark_stream import PARTITIONS, _fresh_db, produce_backlog

DATABASES = ("cinepulse_profile_stages", "cinepulse_profile_batch")
#: landings timed per writer (their median is reported)
LANDING_RUNS = 3


def _builtin_normalise(rules: Any) -> Callable[[Any], Any]:
    """A stand-in for the ``normalise_comment`` UDF made of built-ins (no Python): what the
    rules cost without the Arrow round trip (not NFC: for timing only)."""
    from pyspark.sql import functions as F

    return lambda text: F.regexp_replace(F.trim(text), r"\s+", " ")


@contextlib.contextmanager
def _without_normalise_udf() -> Iterator[None]:
    # transforms imports the UDF at call time, from the udfs module: patched there
    with mock.patch("cinepulse_spark_jobs.udfs.normalise_comment", _builtin_normalise):
        yield


class Stages:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, bool]] = []

    def add(self, name: str, seconds: float, *, counted: bool = True) -> None:
        self.rows.append((name, seconds, counted))
        print(f"  {name}: {seconds:.2f} s", flush=True)

    @contextlib.contextmanager
    def time(self, name: str, *, counted: bool = True) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.add(name, time.perf_counter() - t0, counted=counted)

    def table(self, events: int) -> str:
        total = sum(s for _, s, counted in self.rows if counted)
        width = max(len(n) for n, _, _ in self.rows) + 2
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        lines = [
            f"one micro-batch of {events:,} events, local[2] (load average at the end {load})",
            f"{'stage':<{width}}{'seconds':>9}{'share':>8}",
        ]
        for name, s, counted in self.rows:
            share = f"{s / total:>7.0%}" if counted else "      -"
            lines.append(f"{name:<{width}}{s:>9.2f} {share}")
        lines.append(f"{'total of the counted stages':<{width}}{total:>9.2f} {1:>7.0%}")
        return "\n".join(lines)


def _noop(frame: Any) -> None:
    frame.write.format("noop").mode("overwrite").save()


def profile(stack: Any, events: int, *, end_to_end: bool = True) -> Stages:
    from psycopg import sql
    from pyspark.sql import functions as F

    from cinepulse_common import topics
    from cinepulse_common.kafka import (
        delete_topics,
        ensure_topics,
        make_admin,
        spark_kafka_options,
    )
    from cinepulse_common.postgres import connect
    from cinepulse_common.rules import active_rules
    from cinepulse_common.settings import KafkaSettings, PostgresSettings
    from cinepulse_common.warehouse import ensure_batch_tables, load_events_from_tables
    from cinepulse_spark_jobs.session import make_spark
    from cinepulse_spark_jobs.settings import SparkJobsSettings
    from cinepulse_spark_jobs.stream import (
        LANDING,
        SOURCE_FLAG,
        land_events,
        landing_lock,
        process_events_batch,
        transform_events,
    )
    from cinepulse_spark_jobs.transforms import (
        assign_event_ids,
        deduplicate_events,
        normalise_event_types,
        normalise_events,
        parse_events,
        split_valid,
        validate_events,
    )
    from cinepulse_spark_jobs.udfs import classify, normalise_comment

    rules = active_rules()
    kafka = KafkaSettings(
        bootstrap_servers=stack.kafka.bootstrap,
        topic_prefix=f"profile-spark-{secrets.token_hex(4)}-",
    )
    user_topics = [kafka.topic(t) for t in topics.USER_EVENT_TOPICS]
    admin = make_admin(kafka)
    ensure_topics(admin, user_topics, partitions=PARTITIONS)
    stages = Stages()
    try:
        print(f"producing {events:,} events into {kafka.topic_prefix}*", flush=True)
        produce_backlog(kafka, events)
        dsn, dsn_batch = (_fresh_db(stack, name) for name in DATABASES)
        with tempfile.TemporaryDirectory(prefix="spark-profile-") as tmp:
            settings = SparkJobsSettings(
                kafka=kafka,
                postgres=PostgresSettings(dsn=dsn),
                checkpoint_dir=Path(tmp),
                metrics_port=0,
            )
            with spark_session(lambda: make_spark(settings, "cinepulse-profile")) as spark:
                spark.sparkContext.setLogLevel("ERROR")
                reader = spark.read.format("kafka")
                for key, value in spark_kafka_options(kafka).items():
                    reader = reader.option(key, value)
                records = (
                    reader.option("subscribe", ",".join(user_topics))
                    # a fixed group: Spark pools Kafka consumers per group and partition, as
                    # a stream's stable group reuses them across micro-batches (a batch
                    # read's random group would pay new consumers at every read)
                    .option("kafka.group.id", f"{kafka.topic_prefix}profile")
                    .option("startingOffsets", "earliest")
                    .option("endingOffsets", "latest")
                    .load()
                )

                def batch() -> Any:  # as the stream hands a micro-batch over, coalesced
                    return parse_events(records).coalesce(settings.batch_partitions)

                print("warm-up (Kafka consumers, Python workers, classifier)", flush=True)
                # a running stream's consumers are pooled across micro-batches: warmed here
                _noop(records)
                slice_ = batch().limit(2000).repartition(settings.batch_partitions)
                warm, warm_q = transform_events(slice_, rules)
                _noop(warm)
                _noop(warm_q)

                with stages.time("Kafka read alone", counted=False):
                    _noop(records.coalesce(settings.batch_partitions))
                with stages.time("Kafka read + parse (+ cache)"):
                    parsed = batch().persist()
                    parsed.count()
                with _without_normalise_udf(), stages.time("validation, built-ins only (+ cache)"):
                    validated = validate_events(
                        normalise_event_types(assign_event_ids(parsed), rules), rules
                    ).persist()
                    validated.count()
                with (
                    _without_normalise_udf(),
                    stages.time("dedup + normalisation, built-ins only (+ cache)"),
                ):
                    valid, _ = split_valid(validated)
                    normalised = normalise_events(deduplicate_events(valid, rules), rules).persist()
                    normalised.count()
                udf = normalise_comment(rules)
                comment = F.col("event_type") == "comment"
                with stages.time("normalise_comment UDF, validation's pass"):
                    _noop(parsed.select(udf(F.when(comment, F.col("payload.text"))).alias("n")))
                with stages.time("normalise_comment UDF, normalisation's pass"):
                    _noop(normalised.select(F.when(comment, udf(F.col("payload.text"))).alias("n")))
                with stages.time("classify UDF"):
                    _noop(
                        normalised.select(classify(F.col("comment_text")).alias("e")).select("e.*")
                    )
                with stages.time("(check) whole transform, real UDFs (+ cache)", counted=False):
                    modelled, quarantined = transform_events(parsed, rules, cache=True)
                    modelled = modelled.persist()
                    n_modelled, n_held = modelled.count(), quarantined.count()
                print(f"  {n_modelled:,} modelled, {n_held:,} quarantined", flush=True)
                with landing_lock(settings.postgres, LANDING):

                    def truncate() -> tuple[str, str]:
                        with connect(settings.postgres, autocommit=True) as conn:
                            landing = ensure_batch_tables(conn, LANDING)
                            conn.execute(
                                sql.SQL("TRUNCATE {}, {}").format(*map(sql.Identifier, landing))
                            )
                        return landing

                    # the median of LANDING_RUNS: the first pays the JDBC driver's start
                    # (once per driver, not per micro-batch), and the machines are shared
                    runs = []
                    for _ in range(LANDING_RUNS):
                        landing = truncate()
                        t0 = time.perf_counter()
                        land_events(modelled, quarantined, settings, landing)
                        runs.append(time.perf_counter() - t0)
                    print("  landings: " + ", ".join(f"{r:.2f} s" for r in runs), flush=True)
                    stages.add(
                        f"JDBC landing (from the cache), median of {LANDING_RUNS}",
                        statistics.median(runs),
                    )
                    with stages.time("load transaction"), connect(settings.postgres) as conn:
                        written = load_events_from_tables(
                            conn, LANDING, source_flag=SOURCE_FLAG, dedup=rules.dedup
                        )
                facts = sum(n for t, n in written.items() if t.startswith("fact_"))
                print(f"  {facts:,} fact rows written", flush=True)
                if end_to_end:
                    spark.catalog.clearCache()
                    whole = settings.model_copy(
                        update={"postgres": PostgresSettings(dsn=dsn_batch)}
                    )
                    with stages.time("(check) process_events_batch end to end", counted=False):
                        process_events_batch(batch(), 0, whole, rules)
    finally:
        delete_topics(admin, user_topics)
        for name in DATABASES:
            with contextlib.suppress(Exception):
                stack.postgres.drop_database(name)
    return stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spark_profile", description=__doc__)
    parser.add_argument("--events", type=int, default=30_000, help="backlog size (one batch)")
    parser.add_argument(
        "--no-end-to-end",
        action="store_true",
        help="skip the check run of process_events_batch on the same batch",
    )
    args = parser.parse_args(argv)
    from cinepulse_devstack import Stack

    stack = Stack()
    started = stack.up(["kafka", "postgres"])
    try:
        stages = profile(stack, args.events, end_to_end=not args.no_end_to_end)
    finally:
        if started:  # never down() with no names: that stops everything
            stack.down(started)
    print()
    print(stages.table(args.events))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
