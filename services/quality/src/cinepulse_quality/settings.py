"""Settings of quality (``CINEPULSE_*`` variables; nested blocks use ``__``).

Examples: ``CINEPULSE_KAFKA__BOOTSTRAP_SERVERS=kafka:9092``,
``CINEPULSE_POSTGRES__DSN=postgresql://...``, ``CINEPULSE_MONGO__URL=mongodb://...``,
``CINEPULSE_PUSHGATEWAY_URL=http://pushgateway:9091``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cinepulse_common.settings import (
    CinepulseSettings,
    KafkaSettings,
    MongoSettings,
    PostgresSettings,
)


class QualitySettings(CinepulseSettings):
    kafka: KafkaSettings
    postgres: PostgresSettings
    mongo: MongoSettings
    collection: str = Field(
        "user_logs", description="the archiver's collection of raw user events (in mongo.database)"
    )
    group_id: str = Field(
        "cinepulse-quality",
        description="consumer group id of the reads (offsets are assigned, never committed)",
    )
    window_s: int = Field(3600, ge=1, description="default window length when --from is absent")
    grace_s: int = Field(
        300,
        ge=0,
        description="default end of the window: this long before now (records younger than "
        "that may still be in flight through the archiver and Spark)",
    )
    read_timeout_s: float = Field(
        120.0, gt=0, description="deadline for reading the window's records from Kafka"
    )
    max_examples: int = Field(20, ge=0, description="positions listed per kind of difference")
    mongo_lookup: Literal["auto", "keys", "scan"] = Field(
        "auto",
        description="how raw documents are found: keys (``_id`` $in lookups, one per chunk of "
        "positions: MongoDB answers them from the _id index), scan (every ``_id`` of the "
        "collection read once: for a server that scans the collection for each $in, such as "
        "FerretDB on SQLite), auto (scan on FerretDB when the window has more than one chunk)",
    )
    pushgateway_url: str | None = Field(None, description="Prometheus Pushgateway, if any")
