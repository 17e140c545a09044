"""Fixtures of the TMDB tests: TMDB's recorded Fight Club body (tmdb-fetcher), and the
offline TMDB server with its recorded examples and data set (each module-scoped)."""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cinepulse_devstack import tmdb_offline
from cinepulse_devstack.tmdb_offline import DEFAULT_CSV, DEFAULT_OPENAPI, create_app, load_recorded
from tests.datasets import require
from tests.unit.tmdb.fakes import MAX_PAGES


@pytest.fixture(scope="module")
def fight_club() -> dict[str, Any]:
    require("tmdb-api")
    spec = json.loads(DEFAULT_OPENAPI.read_text(encoding="utf-8"))
    content = spec["paths"]["/3/movie/{movie_id}"]["get"]["responses"]["200"]["content"]
    examples = content["application/json"]["examples"]
    body = json.loads(next(iter(examples.values()))["value"])
    assert isinstance(body, dict)
    return body


@pytest.fixture
def body(fight_club: dict[str, Any]) -> dict[str, Any]:
    """A private copy of the recorded Fight Club body, safe to mutate."""
    return copy.deepcopy(fight_club)


@pytest.fixture(scope="module")
def recorded() -> tmdb_offline.Recorded:
    return load_recorded(DEFAULT_OPENAPI)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with DEFAULT_CSV.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(max_pages=MAX_PAGES)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as c:
        c.post("/__admin/reset")
        yield c
        c.post("/__admin/reset")
