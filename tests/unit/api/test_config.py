"""The api's settings and the date windows of its queries."""

from __future__ import annotations

from datetime import date

import pytest

from cinepulse_api.adapters.warehouse import window_bounds
from cinepulse_api.settings import ApiSettings


def test_window_bounds_end_today_inclusive() -> None:
    today = date(2026, 3, 2)
    assert window_bounds("day", today) == (today, today)
    assert window_bounds("week", today) == (date(2026, 2, 24), today)
    assert window_bounds("month", today) == (date(2026, 2, 1), today)
    assert window_bounds("all", today) == (None, None)  # every day, the future's included


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", "postgresql://u:p@db/x")
    s = ApiSettings()
    assert (s.port, s.bayes_prior_votes, s.cache_max_age_s) == (8000, 10.0, 60)
    assert (s.archiver_url, s.archiver_timeout_s) == ("http://127.0.0.1:6066", 1.0)
    assert s.auth.enabled and s.auth.public_aggregates and s.auth.header == "X-API-Key"
    assert s.auth.user_token_secret is None and s.db_pool_timeout_s == 5.0
    assert (s.answer_cache_s, s.answer_cache_entries, s.trending_cache_s) == (10.0, 1024, 5.0)
