"""Settings of pandas-fallback (``CINEPULSE_*`` variables; nested blocks use ``__``)."""

from __future__ import annotations

from pydantic import Field

from cinepulse_common.settings import CinepulseSettings, MongoSettings, PostgresSettings


class PandasFallbackSettings(CinepulseSettings):
    postgres: PostgresSettings
    mongo: MongoSettings
    collection: str = Field(
        "user_logs", description="the archiver's collection of raw user events (in mongo.database)"
    )
    chunk_size: int = Field(
        20_000, ge=1, description="raw events read, transformed and written together (memory)"
    )
    pushgateway_url: str | None = Field(None, description="Prometheus Pushgateway, if any")
    abandoned_after_s: float = Field(
        6 * 3600,
        gt=0,
        description="a run still 'running' this long after it started is marked failed "
        "(its process died: a run commits whole, so it left no rows)",
    )
