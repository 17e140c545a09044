"""Settings of pandas-fallback (``CINEPULSE_*`` variables; nested blocks use ``__``)."""

from __future__ import annotations

from cinepulse_common.settings import CinepulseSettings, MongoSettings, PostgresSettings


class PandasFallbackSettings(CinepulseSettings):
    postgres: PostgresSettings
    mongo: MongoSettings
