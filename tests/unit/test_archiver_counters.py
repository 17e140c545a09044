"""The archiver's live counters without Kafka: no key index (faust never prunes one), the
counter views read only the stored entries of the windows they ask for, and stale windows
are dropped, those recovered from the changelog included (faust's own cleanup expires only
the windows this process wrote)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cinepulse_archiver import web
from cinepulse_archiver.app import create_app
from cinepulse_archiver.counters import expire_stale, window_counts
from cinepulse_archiver.settings import ArchiverSettings

#: the views' clock: the middle of the current minute (faust's own cleanup reads the wall
#: clock, which stays within a minute of it)
MINUTE = time.time() // 60 * 60
NOW = MINUTE + 30


def _window(minutes_ago: int) -> tuple[float, float]:
    start = MINUTE - 60 * minutes_ago
    return (start, start + 59.9)  # faust's WindowRange_from_start(start, 60)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[faust.App]:
    settings = ArchiverSettings(
        kafka={"bootstrap_servers": "127.0.0.1:1"},  # type: ignore[arg-type]
        mongo={"url": "mongodb://127.0.0.1:9/", "server_selection_timeout_ms": 100},  # type: ignore[arg-type]
        data_dir=tmp_path,
    )
    app = create_app(settings)
    app.web.init_server()
    # the views' clock, and no consumer (it has not started: no partition is assigned)
    monkeypatch.setattr(web, "time", SimpleNamespace(time=lambda: NOW))
    monkeypatch.setattr(app.consumer, "assignment", lambda: set())
    yield app


def _table(app: faust.App, name: str) -> Any:
    return app.tables[name]


def _recover(table: Any, *entries: tuple[str, tuple[float, float], int, int]) -> None:
    """What faust's recovery does with changelog records: straight into the store."""
    events = [
        SimpleNamespace(
            key=[key, list(window)], value=count, message=SimpleNamespace(value=b"x", partition=p)
        )
        for key, window, count, p in entries
    ]
    table.data.apply_changelog_batch(events, to_key=table._to_key, to_value=table._to_value)


async def _get(app: faust.App, *paths: str) -> list[Any]:
    web: Any = app.web
    answers = []
    async with TestClient(TestServer(web.web_app)) as client:
        for path in paths:
            r = await client.get(path)
            assert r.status == 200, await r.text()
            answers.append(json.loads(await r.text()))
    return answers


def test_no_counter_keeps_a_key_index(app: faust.App) -> None:
    # faust's key index is a plain table (no window, so never expired) on a compacted
    # changelog: every movie ever counted, kept and recovered forever
    assert sorted(app.tables) == ["events_per_minute", "movie_events_per_minute"]
    for name in app.tables:
        assert _table(app, name).window.expires == 3600  # what faust expires


def test_the_views_read_only_the_windows_asked_for(app: faust.App) -> None:
    movies = _table(app, "movie_events_per_minute")
    _recover(
        movies,
        ("603@0", _window(0), 5, 0),
        ("603@1", _window(0), 2, 1),  # the same movie from another partition: summed
        ("99@0", _window(4), 8, 0),
        ("7@0", _window(20), 100, 0),  # older than the 15 minutes asked by default
        ("8@0", _window(1), 0, 0),  # a zero counts for nothing
    )
    types = _table(app, "events_per_minute")
    _recover(types, ("rate@0", _window(0), 3, 0), ("click@1", _window(2), 1, 1))

    trending, wider, per_minute_answer = asyncio.run(
        _get(
            app,
            "/counters/trending",
            "/counters/trending?minutes=30&limit=1",
            "/counters/events_per_minute?minutes=3",
        )
    )
    assert trending["minutes"] == 15 and trending["partitions"] == []
    assert trending["movies"] == [{"movie_id": 99, "events": 8}, {"movie_id": 603, "events": 7}]
    assert wider["movies"] == [{"movie_id": 7, "events": 100}]

    per_minute = per_minute_answer["minutes"]
    assert [m["counts"] for m in per_minute] == [
        {"click": 0, "rate": 3},
        {"click": 0, "rate": 0},
        {"click": 1, "rate": 0},
    ]
    assert per_minute[0]["minute"] == datetime.fromtimestamp(MINUTE, UTC).isoformat()


def test_stale_windows_are_dropped_recovered_ones_included(app: faust.App) -> None:
    movies = _table(app, "movie_events_per_minute")
    # expires is 60 minutes: a window that ended more than that before now is stale
    _recover(movies, ("1@0", _window(61), 4, 0), ("2@0", _window(59), 6, 0))
    written = ("3@1", _window(62))  # as the count agent writes it: on faust's expiry heap
    movies.data[written] = 1
    movies._maybe_set_key_ttl(written, 1)

    asyncio.run(movies._del_old_keys())  # faust's own cleanup (it uses the wall clock)
    assert written not in movies.data  # faust expires what this process wrote...
    assert ("1@0", _window(61)) in movies.data  # ...but not what it recovered

    assert expire_stale(movies, NOW) == 1
    assert list(movies.data.keys()) == [("2@0", _window(59))]
    assert list(movies.data._key_partition) == [("2@0", _window(59))]
    # later, the live window goes stale too: nothing is left
    assert expire_stale(movies, NOW + 3600) == 1 and not list(movies.data.keys())


def test_window_counts_sum_partitions_of_the_windows_asked_for() -> None:
    entries = [
        (("603@0", (60.0, 119.9)), 2),
        (("603@3", (60.0, 119.9)), 1),
        (("42@0", (0.0, 59.9)), 5),
        (("42@0", (120.0, 179.9)), 9),  # not asked for
        (("9@0", (60.0, 119.9)), 0),
    ]
    counts = window_counts(entries, [60.0, 0.0])
    assert counts == {60.0: {"603": 3}, 0.0: {"42": 5}}
    assert list(counts) == [60.0, 0.0]  # in the order asked
