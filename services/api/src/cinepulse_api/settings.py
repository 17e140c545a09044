"""Settings of api (``CINEPULSE_*`` variables; nested blocks use ``__``).

Examples: ``CINEPULSE_POSTGRES__DSN=postgresql://cinepulse:...@postgres:5432/cinepulse``,
``CINEPULSE_POSTGRES__STATEMENT_TIMEOUT_MS=5000``, ``CINEPULSE_BAYES_PRIOR_VOTES=25``,
``CINEPULSE_ARCHIVER_URL=http://archiver:6066``,
``CINEPULSE_AUTH__KEYS_PATH=/var/run/secrets/cinepulse/api-keys`` (a mounted Secret: one file
per client), ``CINEPULSE_AUTH__ROLES={"explorer": "internal", "web": "frontend"}``,
``CINEPULSE_AUTH__USER_TOKEN_SECRET=...`` (shared with the frontend's backend). The access
rules are in :mod:`cinepulse_api.access`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from cinepulse_common.apikeys import ApiKeySettings
from cinepulse_common.settings import CinepulseSettings, PostgresSettings

#: the shortest user token secret accepted (bytes): HS256 wants at least its hash size
MIN_TOKEN_SECRET_BYTES = 32


class ApiAuthSettings(ApiKeySettings):
    """API keys (``keys``, ``keys_path``: see :class:`ApiKeySettings`), roles, user tokens."""

    enabled: bool = Field(
        True, description="check keys and the per-user rules; false opens everything (dev only)"
    )
    header: str = Field("X-API-Key", description="request header carrying the API key")
    public_aggregates: bool = Field(
        True,
        description="top movies, movies, emotion trends and trending without a key; per-user "
        "endpoints always need one",
    )
    roles: dict[str, Literal["internal", "frontend"]] = Field(
        default_factory=dict,
        description="client id -> role: internal reads any user, frontend only the user of "
        "its user token; a client not listed is frontend",
    )
    user_token_header: str = Field(
        "X-User-Token", description="request header carrying a frontend's user token"
    )
    user_token_secret: SecretStr | None = Field(
        None,
        description="HS256 secret of the user tokens (JWT: sub, exp, aud=cinepulse-api), "
        f"shared with the frontend's backend; at least {MIN_TOKEN_SECRET_BYTES} bytes. Unset: "
        "frontend clients read no per-user data",
    )
    user_token_max_ttl_s: int = Field(
        3600, ge=1, description="a token expiring further ahead than this is refused"
    )

    @model_validator(mode="after")
    def _strong_secret(self) -> ApiAuthSettings:
        secret = self.user_token_secret
        if secret is not None and len(secret.get_secret_value().encode()) < MIN_TOKEN_SECRET_BYTES:
            raise ValueError(f"user_token_secret must be at least {MIN_TOKEN_SECRET_BYTES} bytes")
        return self


class ApiSettings(CinepulseSettings):
    postgres: PostgresSettings
    auth: ApiAuthSettings = ApiAuthSettings()
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
    answer_cache_s: float = Field(
        10.0,
        ge=0,
        description="how long the api keeps an aggregate answer (top movies, a movie, emotion "
        "trends) before computing it again; 0 = never kept. Per-user answers are never kept",
    )
    answer_cache_entries: int = Field(
        1024, ge=1, description="most aggregate answers kept (least recently used go first)"
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

    @model_validator(mode="after")
    def _auth_in_production(self) -> ApiSettings:
        if self.environment == "production" and not self.auth.enabled:
            raise ValueError("auth.enabled=false is for development; production checks keys")
        return self
