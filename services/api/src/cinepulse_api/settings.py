"""Settings of api (``CINEPULSE_*`` variables; nested blocks use ``__``).

Examples: ``CINEPULSE_POSTGRES__DSN=postgresql://cinepulse:...@postgres:5432/cinepulse``,
``CINEPULSE_POSTGRES__STATEMENT_TIMEOUT_MS=5000``, ``CINEPULSE_BAYES_PRIOR_VOTES=25``,
``CINEPULSE_ARCHIVER_URL=http://archiver:6066``.
"""

from __future__ import annotations

from pydantic import Field

from cinepulse_common.settings import CinepulseSettings, PostgresSettings


class ApiSettings(CinepulseSettings):
    postgres: PostgresSettings
    host: str = "0.0.0.0"  # noqa: S104 - listens inside its pod
    port: int = Field(8000, ge=1, le=65535)
    bayes_prior_votes: float = Field(
        10.0,
        ge=0,
        description="m of the Bayesian average in /api/top_movies: how many ratings of the "
        "window's mean rating every movie is assumed to have before its own",
    )
    cache_max_age_s: int = Field(
        60, ge=0, description="Cache-Control max-age of the read endpoints (seconds)"
    )
    readiness_timeout_s: float = Field(2.0, gt=0, description="deadline of the /readyz check")
    archiver_url: str = Field(
        "http://127.0.0.1:6066",
        description="base URL of the archiver, whose /counters/trending feeds /api/trending",
    )
    archiver_timeout_s: float = Field(
        1.0, gt=0, le=30, description="deadline of each request to the archiver (seconds)"
    )
