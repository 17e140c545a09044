"""Settings of api (``CINEPULSE_*`` variables; nested blocks use ``__``)."""

from __future__ import annotations

from cinepulse_common.settings import CinepulseSettings, PostgresSettings


class ApiSettings(CinepulseSettings):
    postgres: PostgresSettings
