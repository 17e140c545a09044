"""The archiver's web server without Kafka or MongoDB: faust's views that expose its
internals (/table, /router, statistics, /graph, /performance) are not served, its own views
are, and /readyz names the failing dependency without its error text."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cinepulse_archiver.app import create_app
from cinepulse_archiver.settings import ArchiverSettings
from cinepulse_common import observability

OWN_VIEWS = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/counters/events_per_minute",
    "/counters/trending",
}
#: faust's views listing tables, keys, workers, partitions or sensors
INTERNAL_PREFIXES = ("/table", "/router", "/assignment", "/graph", "/performance")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[faust.App]:
    settings = ArchiverSettings(
        kafka={"bootstrap_servers": "127.0.0.1:1"},  # type: ignore[arg-type]
        # nothing listens on port 9: a ping fails within 0.1 s
        mongo={"url": "mongodb://127.0.0.1:9/", "server_selection_timeout_ms": 100},  # type: ignore[arg-type]
        data_dir=tmp_path,
    )
    app = create_app(settings)
    app.web.init_server()  # what the worker does at start: faust's views, then ours
    yield app


async def _get(app: faust.App, *paths: str) -> list[tuple[int, str]]:
    web: Any = app.web  # the aiohttp driver
    async with TestClient(TestServer(web.web_app)) as client:
        answers = []
        for path in paths:
            r = await client.get(path)
            answers.append((r.status, await r.text()))
        return answers


def test_faust_views_exposing_internals_are_not_registered(app: faust.App) -> None:
    views = set(app.web.views)
    assert views >= OWN_VIEWS
    leaked = sorted(v for v in views if v.startswith(INTERNAL_PREFIXES))
    assert leaked == []
    # "/" is faust's plain production index, not the sensor statistics
    assert views - OWN_VIEWS == {"/"}


def test_faust_internal_pages_answer_404_and_ours_answer(app: faust.App) -> None:
    internal = ["/table/", "/router/", "/assignment/", "/graph/", "/performance/"]
    *answers, (index, index_body), (health, _), (metrics, text) = asyncio.run(
        _get(app, *internal, "/", "/healthz", "/metrics")
    )
    assert [status for status, _ in answers] == [404] * len(internal)
    assert index == 200 and json.loads(index_body) == {"status": "OK"}  # not the statistics
    assert health == 200
    assert metrics == 200 and "cinepulse_archiver_" in text


class RecordingLog:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, object]]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.warnings.append((event, fields))


def test_readyz_names_the_down_dependencies_without_their_errors(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = RecordingLog()
    monkeypatch.setattr(observability, "log", log)
    [(status, body)] = asyncio.run(_get(app, "/readyz"))
    assert status == 503
    # MongoDB refuses the connection; the consumer has not started (nor been assigned)
    assert json.loads(body) == {
        "status": "unavailable",
        "checks": {"mongo": "down", "kafka": "down"},
    }
    for detail in ("127.0.0.1", "Timeout", "ConsumerNotStarted", "error"):
        assert detail not in body, detail
    logged = {fields["check"]: str(fields["error"]) for _, fields in log.warnings}
    assert "ServerSelectionTimeoutError" in logged["mongo"] and "127.0.0.1:9" in logged["mongo"]
    assert "ConsumerNotStarted" in logged["kafka"]
