"""Settings of tmdb-fetcher (``CINEPULSE_*`` variables; nested blocks use ``__``)."""

from __future__ import annotations

from cinepulse_common.settings import (
    CinepulseSettings,
    KafkaSettings,
    MongoSettings,
    PostgresSettings,
)


class TmdbFetcherSettings(CinepulseSettings):
    kafka: KafkaSettings
    postgres: PostgresSettings
    mongo: MongoSettings
