"""Settings of the archiver (``CINEPULSE_*`` variables; nested blocks use ``__``).

Examples: ``CINEPULSE_KAFKA__BOOTSTRAP_SERVERS=kafka:9092``,
``CINEPULSE_MONGO__URL=mongodb://mongo:27017/``, ``CINEPULSE_BATCH_SIZE=500``,
``CINEPULSE_TRENDING_MINUTES=15``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from cinepulse_common.settings import (
    CinepulseSettings,
    KafkaSettings,
    MongoSettings,
    metrics_port_field,
)


class ArchiverSettings(CinepulseSettings):
    kafka: KafkaSettings
    mongo: MongoSettings
    app_id: str = Field(
        "cinepulse-archiver",
        description="faust app id: the consumer group and the prefix of its table topics",
    )
    batch_size: int = Field(500, ge=1, le=10_000, description="records per MongoDB write")
    batch_within_s: float = Field(0.5, gt=0, description="longest wait to fill a batch")
    web_host: str = "0.0.0.0"  # noqa: S104 - listens inside its pod
    web_port: int = Field(6066, ge=1, le=65535, description="/healthz, /readyz, counters")
    metrics_port: int = metrics_port_field()
    counter_minutes: int = Field(
        60, ge=1, le=1440, description="minutes of per-minute event counts kept"
    )
    trending_minutes: int = Field(
        15, ge=1, le=1440, description="default look-back of /counters/trending"
    )
    replication_factor: int = Field(
        1, ge=1, description="of the table changelog topics, and of source topics it creates"
    )
    create_source_topics: bool = Field(
        True,
        description="create the source and dead-letter topics missing at start: a consumer "
        "subscribed to a topic that does not exist yet sees it only minutes later",
    )
    kafka_startup_wait_s: float = Field(
        180,
        ge=0,
        description="at start, how long Kafka may take to answer before the archiver exits "
        "(a fresh install starts it alongside the broker)",
    )
    source_partitions: int = Field(
        6,
        ge=1,
        description="partitions of the source topics it creates (the broker's default), and "
        "of its tables' changelog topics: faust requires them equal, so at start the archiver "
        "takes the partitions its source topics have",
    )
    data_dir: Path = Field(Path("/tmp/cinepulse-archiver"), description="faust's data dir")  # noqa: S108
    session_timeout_s: float = Field(
        10.0, ge=6, le=300, description="consumer group session timeout (crash detection)"
    )
    gap_probe_records: int = Field(
        1000,
        ge=1,
        description="at most this many offsets before the first record seen of a partition "
        "are read again from Kafka when its saved position is behind that record",
    )
    gap_read_timeout_s: float = Field(
        60.0, gt=0, description="deadline for reading skipped offsets again from Kafka"
    )
    mongo_retry_max_s: float = Field(
        30.0, gt=0, description="longest pause between MongoDB retries (it retries forever)"
    )
    mongo_op_timeout_s: float = Field(
        30.0,
        gt=0,
        description="an attempt at one MongoDB operation that has not answered by then is "
        "abandoned and retried (pymongo's timeoutMS), so a server that never answers cannot "
        "hold a batch",
    )
