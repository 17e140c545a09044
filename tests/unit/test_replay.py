"""MovieLens replayed as gateway events (the demo's source), and the synthetic fallback."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cinepulse_common.events import parse_event
from cinepulse_devstack.demo import DemoOptions, demo_events, sample_user
from cinepulse_devstack.movielens import read_movielens
from cinepulse_devstack.replay import _squeeze, movielens_events
from tests.datasets import needs

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def needs_data(test: Callable[..., None]) -> Callable[..., None]:
    """MovieLens and the TMDB movies (the replay keeps the ratings of those movies)."""
    return needs("movielens-small")(needs("tmdb-5000")(test))


def test_squeeze_keeps_order_and_spacing_within_the_span() -> None:
    times = [1_000, 1_500, 2_000, 4_000]
    out = _squeeze(times, NOW, span_days=10)
    assert out[0] == NOW - timedelta(days=10)
    assert out[-1] == NOW
    assert out == sorted(out)
    # relative spacing: 500 of 3,000 seconds is a sixth of the span
    assert out[1] - out[0] == timedelta(days=10) / 6


def test_squeeze_of_one_instant_and_of_nothing() -> None:
    assert _squeeze([], NOW, 5) == []
    assert _squeeze([7, 7], NOW, 5) == [NOW - timedelta(days=5)] * 2


@needs_data
def test_movielens_events_are_valid_envelopes_in_time_order() -> None:
    now = datetime.now(UTC)  # the gateway refuses times ahead of its clock
    events = movielens_events(users=15, now=now, span_days=28)
    kinds = Counter(e["event_type"] for e in events)
    assert set(kinds) == {"rate", "comment"}
    # every rating of those users on the TMDB set's movies, nothing else
    assert kinds["rate"] == len(read_movielens(users=15).ratings)
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids)
    times = [datetime.fromisoformat(e["occurred_at"]) for e in events]
    assert times == sorted(times)
    assert now - timedelta(days=28) <= times[0] and times[-1] <= now
    for e in events:
        assert int(e["user_id"].removeprefix("ml-")) <= 15
        parsed = parse_event(e)  # the gateway's own validation
        assert str(parsed.event_id) == e["event_id"]
    comments = [e for e in events if e["event_type"] == "comment"]
    assert all(c["payload"]["text"].strip() for c in comments)


@needs_data
def test_replaying_twice_gives_the_same_ids() -> None:
    first = movielens_events(users=3, now=NOW)
    again = movielens_events(users=3, now=NOW + timedelta(hours=5))
    assert [e["event_id"] for e in first] == [e["event_id"] for e in again]


def test_the_demo_falls_back_to_synthetic_events_without_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CINEPULSE_DATASETS", str(tmp_path))  # an empty mirror
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # and an empty cache
    source, events = demo_events(DemoOptions(synthetic_default=250))
    assert source.startswith("synthetic: 250")
    assert len(events) == 250
    assert {e["event_type"] for e in events} == {"watch", "rate", "comment", "click"}
    for e in events:
        parse_event(e)


@needs_data
def test_the_demo_replays_movielens_when_it_is_there() -> None:
    source, events = demo_events(DemoOptions(users=4))
    assert source.startswith("MovieLens: ")
    assert "of 4 users" in source
    assert sample_user(events) == Counter(e["user_id"] for e in events).most_common(1)[0][0]


def test_asking_for_synthetic_events_uses_them() -> None:
    source, events = demo_events(DemoOptions(synthetic=30))
    assert source.startswith("synthetic: 30 ")
    assert len(events) == 30
