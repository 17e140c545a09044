"""The settings of the three commands (one class, :class:`MetabaseSetupSettings`), the errors
they raise, and their progress on stderr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator

from cinepulse_common.settings import CinepulseSettings, PostgresSettings

PROG = "cinepulse-metabase"


class AppDatabaseSettings(BaseModel):
    """Metabase's application database (its users, questions, dashboards) in the warehouse's
    PostgreSQL server, owned by its own LOGIN role: what the chart manages when it generates
    Metabase's credentials."""

    name: str = "metabase"
    user: str = "metabase"
    password: SecretStr
    #: where Metabase reaches it (``wait-database``); ``prepare-database`` makes it on the
    #: server of CINEPULSE_POSTGRES__DSN
    host: str = "127.0.0.1"
    port: int = Field(5432, ge=1, le=65535)


class MetabaseSettings(BaseModel):
    #: Metabase's base URL (in the cluster: its Service)
    url: str = "http://127.0.0.1:3000"
    #: the first admin, made on a fresh instance; later runs log in as that admin
    admin_email: str = "admin@cinepulse.example.com"
    admin_password: SecretStr | None = None
    admin_first_name: str = "Cinepulse"
    admin_last_name: str = "Admin"
    site_name: str = "Cinepulse"
    #: the warehouse's name in Metabase: the database of that name is created or updated
    datasource_name: str = "Cinepulse warehouse"
    #: the LOGIN role Metabase reads the warehouse as (a member of cinepulse_readonly only)
    reader_role: str = "cinepulse_metabase"
    reader_password: SecretStr | None = None
    #: the one schema Metabase syncs and the reader may read
    schema_name: str = "analytics"
    app_database: AppDatabaseSettings | None = None
    #: the questions and dashboards ``provision`` creates or updates (the chart mounts
    #: files/metabase/content.json); unset: the admin and the datasource only
    content_path: Path | None = None
    #: how long ``provision`` waits for /api/health (the first start migrates Metabase's DB)
    ready_timeout_s: float = Field(600.0, gt=0)
    retry_interval_s: float = Field(5.0, gt=0)
    request_timeout_s: float = Field(30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class MetabaseSetupSettings(CinepulseSettings):
    #: the warehouse, as its owner (a role that may create roles and databases)
    postgres: PostgresSettings | None = None
    metabase: MetabaseSettings = Field(default_factory=MetabaseSettings)


class ConfigError(ValueError):
    """A setting a command needs is missing; the message names its variable."""


def _need(value: Any, variable: str) -> Any:
    if value is None:
        raise ConfigError(f"{variable} is required")
    return value


class MetabaseError(RuntimeError):
    """Metabase refused something; the message says what and how to fix it."""


class NotReady(MetabaseError):
    """Metabase (or a database) did not answer in time."""


def _stderr(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
