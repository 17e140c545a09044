"""The composition root: a :class:`~cinepulse_tmdb_fetcher.pipeline.Fetcher` wired to the
real adapters from settings. Nothing connects here: each adapter connects when first used,
so a dry run never touches Kafka and reads PostgreSQL only for the watermark."""

from __future__ import annotations

from cinepulse_tmdb_fetcher.adapters.kafka import KafkaMoviePublisher
from cinepulse_tmdb_fetcher.adapters.mongo import MongoRawArchive
from cinepulse_tmdb_fetcher.adapters.postgres import (
    PostgresRunHistory,
    PostgresStaging,
    PostgresWatermark,
)
from cinepulse_tmdb_fetcher.client import TmdbClient
from cinepulse_tmdb_fetcher.pipeline import Fetcher
from cinepulse_tmdb_fetcher.ports import Sinks
from cinepulse_tmdb_fetcher.settings import TmdbFetcherSettings


def build_sinks(settings: TmdbFetcherSettings) -> Sinks:
    return Sinks(
        publisher=KafkaMoviePublisher(settings.kafka),
        archive=MongoRawArchive(settings.mongo),
        staging=PostgresStaging(settings.postgres),
        watermark=PostgresWatermark(settings.postgres),
        runs=PostgresRunHistory(settings.postgres),
    )


def build_fetcher(
    settings: TmdbFetcherSettings, client: TmdbClient, *, dry_run: bool = False
) -> Fetcher:
    return Fetcher(settings, client, build_sinks(settings), dry_run=dry_run)
