"""Settings of tmdb-fetcher (``CINEPULSE_*`` variables; nested blocks use ``__``).

The TMDB credential comes from a mounted Secret: ``CINEPULSE_TMDB__TOKEN_FILE`` (a v4 read
access token, sent as ``Authorization: Bearer``) or ``CINEPULSE_TMDB__API_KEY_FILE`` (a v3
api_key); ``CINEPULSE_TMDB__TOKEN`` / ``CINEPULSE_TMDB__API_KEY`` work too.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator

from cinepulse_common.settings import (
    CinepulseSettings,
    KafkaSettings,
    MongoSettings,
    PostgresSettings,
)


class TmdbSettings(BaseModel):
    base_url: str = Field("https://api.themoviedb.org", description="scheme://host[:port]")
    token: SecretStr | None = Field(None, description="v4 read access token (Bearer)")
    token_file: Path | None = None
    api_key: SecretStr | None = Field(None, description="v3 api_key (query parameter)")
    api_key_file: Path | None = None
    language: str = "en-US"
    #: TMDB documents ~50 requests/s per IP and 20 connections: stay under both
    rate_per_s: float = Field(40.0, gt=0, description="request-rate limit")
    concurrency: int = Field(8, ge=1, le=20, description="requests in flight at most")
    timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(8, ge=0, description="per request, on 429, 5xx, timeouts")
    backoff_base_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    page_cap: int = Field(500, ge=1, description="TMDB serves pages 1..500 only")
    changes_window_days: int = Field(14, ge=1, le=14, description="TMDB's longest /changes range")

    @model_validator(mode="after")
    def _one_credential(self) -> TmdbSettings:
        if not (self.token or self.token_file or self.api_key or self.api_key_file):
            raise ValueError(
                "no TMDB credential: set CINEPULSE_TMDB__TOKEN_FILE (a mounted Secret with a "
                "v4 read access token) or CINEPULSE_TMDB__API_KEY_FILE"
            )
        return self

    def credentials(self) -> tuple[str | None, str | None]:
        """(bearer token, api_key), read from the Secret files when given."""

        def read(value: SecretStr | None, path: Path | None) -> str | None:
            if path is not None:
                try:
                    text = path.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ValueError(f"cannot read TMDB credential {path}: {exc}") from None
                if not text:
                    raise ValueError(f"TMDB credential file {path} is empty")
                return text
            return value.get_secret_value() if value else None

        return read(self.token, self.token_file), read(self.api_key, self.api_key_file)


class TmdbFetcherSettings(CinepulseSettings):
    kafka: KafkaSettings
    postgres: PostgresSettings
    mongo: MongoSettings
    tmdb: TmdbSettings
    chunk_size: int = Field(100, ge=1, le=1000, description="movies fetched and written together")
    pushgateway_url: str | None = Field(None, description="Prometheus Pushgateway, if any")
    incremental_default_days: int = Field(
        1, ge=1, le=14, description="look-back of the first incremental run (no watermark yet)"
    )
