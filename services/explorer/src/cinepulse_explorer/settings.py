"""Settings of the explorer (``CINEPULSE_*`` variables; nested blocks use ``__``).

Examples: ``CINEPULSE_POSTGRES__DSN=postgresql://explorer:...@postgres:5432/cinepulse`` (a
LOGIN role that is a member of ``cinepulse_readonly``), ``CINEPULSE_RECOMMENDER_URL=
http://recommender:8000``, ``CINEPULSE_RECOMMENDER_API_KEY=...`` (the explorer's key among
the api's and the recommender's, an ``internal`` client), ``CINEPULSE_CACHE_TTL_S=300``.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from cinepulse_common.settings import CinepulseSettings, PostgresSettings


class ExplorerSettings(CinepulseSettings):
    postgres: PostgresSettings
    address: str = Field(
        "0.0.0.0",  # noqa: S104 - listens inside its pod
        description="listen address of the Streamlit server",
    )
    port: int = Field(8501, ge=1, le=65535)
    cache_ttl_s: int = Field(60, ge=1, description="how long a query's result is reused (seconds)")
    recommender_url: str = Field(
        "http://127.0.0.1:8001",
        description="base URL of the recommender, whose /api/recommendations the user page shows",
    )
    recommender_api_key: SecretStr | None = Field(
        None,
        description="the explorer's API key, sent to the recommender as X-API-Key: a key of "
        "the api's key set (CINEPULSE_AUTH__KEYS_PATH) whose client is internal, as the "
        "explorer shows any user's recommendations; unset: no key is sent (a recommender "
        "checking keys answers 401)",
    )
    recommender_key_header: str = Field(
        "X-API-Key", description="the header carrying it (the recommender's CINEPULSE_AUTH__HEADER)"
    )
    recommender_timeout_s: float = Field(
        2.0, gt=0, le=30, description="deadline of each request to the recommender (seconds)"
    )
    bayes_prior_votes: float = Field(
        10.0,
        ge=0,
        description="m of the Bayesian average ranking the top movies (as in /api/top_movies)",
    )
