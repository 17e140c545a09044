"""Settings of spark-jobs (``CINEPULSE_*`` variables; nested blocks use ``__``)."""

from __future__ import annotations

from cinepulse_common.settings import CinepulseSettings, KafkaSettings, PostgresSettings


class SparkJobsSettings(CinepulseSettings):
    kafka: KafkaSettings
    postgres: PostgresSettings
