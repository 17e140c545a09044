"""Fixtures of the gateway's unit tests: a clean environment, a fake publisher, a client."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cinepulse_common.rules import load_rules
from cinepulse_event_gateway.app import create_app
from tests.unit.gateway.fakes import FakePublisher, make_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read CINEPULSE_* variables: the tests must not depend on the environment."""
    for name in list(os.environ):
        if name.upper().startswith("CINEPULSE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def client(publisher: FakePublisher) -> Iterator[TestClient]:
    app = create_app(make_settings(), publisher=publisher, rules=load_rules())
    with TestClient(app) as c:
        yield c
