"""``cinepulse-archiver``: run the faust worker (configuration from CINEPULSE_* variables)."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from confluent_kafka import KafkaException

from cinepulse_archiver import __version__
from cinepulse_archiver.app import create_app
from cinepulse_archiver.settings import ArchiverSettings
from cinepulse_common import topics
from cinepulse_common.kafka import ensure_topics, make_admin
from cinepulse_common.logging import configure_logging, get_logger
from cinepulse_common.observability import record_build_info, start_metrics_server
from cinepulse_common.settings import load_settings

log = get_logger(__name__)


def ensure_source_topics(settings: ArchiverSettings) -> None:
    """Create the source and dead-letter topics that do not exist yet. On a fresh install
    the archiver starts before the first event creates them (found on the real node: its
    consumer subscribed to missing topics and archived nothing for minutes, until its next
    metadata refresh). A broker that refuses (topics managed by an operator) is left alone.
    One that does not answer yet is waited for, up to ``kafka_startup_wait_s`` (on a fresh
    install the broker starts alongside: the real node saw the archiver restart once), then
    the start stops and the pod is restarted."""
    if not settings.create_source_topics:
        return
    k = settings.kafka
    names = [k.topic(t) for t in topics.ALL_TOPICS]
    deadline = time.monotonic() + settings.kafka_startup_wait_s
    while True:
        try:
            created = ensure_topics(
                make_admin(k),
                names,
                partitions=settings.source_partitions,
                replication_factor=settings.replication_factor,
                timeout_s=10.0,
            )
            break
        except KafkaException as exc:
            error = exc.args[0]
            if error.name() in ("TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED"):
                log.warning("source topics not created (not allowed)", reason=str(error))
                return
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"cinepulse-archiver: Kafka did not answer within "
                    f"{settings.kafka_startup_wait_s:g}s ({error}); exiting"
                ) from exc
            log.warning("waiting for Kafka", reason=str(error), bootstrap=k.bootstrap_servers)
            time.sleep(2.0)
    if created:
        log.info("source topics created", topics=created, partitions=settings.source_partitions)


def source_topic_partitions(settings: ArchiverSettings) -> int:
    """How many partitions the user-event topics have (the counters' tables must have as
    many); ``source_partitions`` when none exists yet. Topics that disagree stop the start:
    no one count fits them all."""
    k = settings.kafka
    names = {k.topic(t) for t in topics.USER_EVENT_TOPICS}
    meta = make_admin(k).list_topics(timeout=20.0).topics
    counts = {n: len(meta[n].partitions) for n in sorted(names & set(meta))}
    if not counts:
        return settings.source_partitions
    if len(set(counts.values())) > 1:
        raise SystemExit(
            f"cinepulse-archiver: the source topics have different partition counts {counts}; "
            "its counters' tables need one count (repartition them alike)"
        )
    return next(iter(counts.values()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="cinepulse-archiver",
        description="Archive every Kafka record (user events and movies) to MongoDB, "
        "dead-letter what cannot be parsed, keep live counters. Configuration comes from "
        "CINEPULSE_* variables (see the README).",
    )
    parser.add_argument("--web-port", type=int, help="port of the probes and the counters")
    args = parser.parse_args(argv)
    overrides = {"web_port": args.web_port} if args.web_port else {}
    settings = load_settings(ArchiverSettings, **overrides)
    configure_logging("archiver", settings.log_level, settings.log_json)
    record_build_info("archiver", __version__)
    ensure_source_topics(settings)
    partitions = source_topic_partitions(settings)
    if partitions != settings.source_partitions:
        log.info("source topics' partitions", partitions=partitions)
        settings = settings.model_copy(update={"source_partitions": partitions})
    app = create_app(settings, loghandlers=list(logging.getLogger().handlers))
    if settings.metrics_port:  # faust's worker runs in this process: the thread serves it
        start_metrics_server(settings.metrics_port, addr=settings.web_host)
    sys.argv = [
        "cinepulse-archiver",
        "worker",
        "--loglevel",
        settings.log_level.lower(),
        "--web-port",
        str(settings.web_port),
        "--web-host",
        settings.web_host,
    ]
    app.main()


if __name__ == "__main__":
    main()
