"""Settings of api (``CINEPULSE_*`` variables; nested blocks use ``__``).

Examples: ``CINEPULSE_POSTGRES__DSN=postgresql://cinepulse:...@postgres:5432/cinepulse``,
``CINEPULSE_POSTGRES__STATEMENT_TIMEOUT_MS=5000``, ``CINEPULSE_BAYES_PRIOR_VOTES=25``,
``CINEPULSE_ARCHIVER_URL=http://archiver:6066``,
``CINEPULSE_AUTH__KEYS_PATH=/var/run/secrets/cinepulse/api-keys`` (a mounted Secret: one file
per client), ``CINEPULSE_AUTH__ROLES={"explorer": "internal", "web": "frontend"}``,
``CINEPULSE_AUTH__USER_TOKEN_SECRET=...`` (shared with the frontend's backend). The access
rules are in :mod:`cinepulse_common.access` (shared with the recommender).
"""

from __future__ import annotations

from pydantic import Field

from cinepulse_common.access import KeyedServiceSettings
from cinepulse_common.settings import PostgresSettings, metrics_port_field


class ApiSettings(KeyedServiceSettings):
    """The ``auth`` block (``CINEPULSE_AUTH__*``, refused off in production) comes from
    :class:`~cinepulse_common.access.KeyedServiceSettings`, shared with the recommender."""

    postgres: PostgresSettings
    host: str = "0.0.0.0"  # noqa: S104 - listens inside its pod
    port: int = Field(8000, ge=1, le=65535)
    metrics_port: int = metrics_port_field()
    bayes_prior_votes: float = Field(
        10.0,
        ge=0,
        description="m of the Bayesian average in /api/top_movies: how many ratings of the "
        "window's mean rating every movie is assumed to have before its own",
    )
    cache_max_age_s: int = Field(
        60, ge=0, description="Cache-Control max-age of the read endpoints (seconds)"
    )
    answer_cache_s: float = Field(
        10.0,
        ge=0,
        description="how long the api keeps an aggregate answer (top movies, a movie, emotion "
        "trends) before computing it again; 0 = never kept. Per-user answers are never kept",
    )
    answer_cache_entries: int = Field(
        1024, ge=1, description="most aggregate answers kept (least recently used go first)"
    )
    trending_cache_s: float = Field(
        5.0,
        ge=0,
        le=60,
        description="how long the api keeps a /api/trending answer (live counters: as long as "
        "its Cache-Control max-age) before asking the archiver again; one per limit, so at "
        "most 100; 0 = never kept",
    )
    db_pool_timeout_s: float = Field(
        5.0,
        gt=0,
        description="longest wait for a pooled database connection before answering 503",
    )
    readiness_timeout_s: float = Field(2.0, gt=0, description="deadline of the /readyz check")
    archiver_url: str = Field(
        "http://127.0.0.1:6066",
        description="base URL of the archiver, whose /counters/trending feeds /api/trending",
    )
    archiver_timeout_s: float = Field(
        1.0, gt=0, le=30, description="deadline of each request to the archiver (seconds)"
    )
