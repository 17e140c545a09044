"""The api's unit tests: a client of an app with no database behind it, with the internal key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.unit.api.fakes import make_client


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as c:
        c.headers["X-API-Key"] = "internal-key"
        yield c
