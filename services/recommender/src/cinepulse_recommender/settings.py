"""Settings of recommender (``CINEPULSE_*`` variables; nested blocks use ``__``)."""

from __future__ import annotations

from cinepulse_common.settings import CinepulseSettings, PostgresSettings


class RecommenderSettings(CinepulseSettings):
    postgres: PostgresSettings
