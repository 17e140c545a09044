from __future__ import annotations

import asyncio
import json
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import Counter

from cinepulse_common import observability
from cinepulse_common.logging import configure_logging, get_logger
from cinepulse_common.observability import add_health_routes, readiness_answer

DEMO_COUNTER = Counter("cinepulse_test_demo_total", "a counter only tests touch")


def _app(ready: bool) -> FastAPI:
    app = FastAPI()

    def database() -> None:
        if not ready:
            raise ConnectionError("connection refused")

    async def kafka() -> None:
        return None

    add_health_routes(app, {"database": database, "kafka": kafka})
    return app


def test_healthz_is_independent_of_dependencies() -> None:
    assert TestClient(_app(ready=False)).get("/healthz").status_code == 200


class RecordingLog:
    """Stands in for the module's structlog logger: keeps each call's event and fields."""

    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, object]]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.warnings.append((event, fields))


def test_readyz_names_the_failing_check_and_logs_why(monkeypatch: pytest.MonkeyPatch) -> None:
    log = RecordingLog()
    monkeypatch.setattr(observability, "log", log)
    r = TestClient(_app(ready=False)).get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "checks": {"database": "down", "kafka": "ok"}}
    assert "refused" not in r.text and "ConnectionError" not in r.text
    assert log.warnings == [
        (
            "readiness check failed",
            {"check": "database", "error": "error: ConnectionError: connection refused"},
        )
    ]
    r = TestClient(_app(ready=True)).get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "kafka": "ok"}}


def test_a_check_past_its_deadline_is_down_without_detail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(observability, "log", RecordingLog())
    app = FastAPI()

    async def slow() -> None:
        await asyncio.sleep(5)

    add_health_routes(app, {"slow": slow}, timeout_s=0.05)
    r = TestClient(app).get("/readyz")
    assert r.status_code == 503 and r.json()["checks"] == {"slow": "down"}


def test_readiness_answer_never_carries_the_failure_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observability, "log", RecordingLog())
    secret = "error: OperationalError: password authentication failed for user admin@db:5432"
    body, status = readiness_answer({"postgres": secret, "kafka": "ok"})
    assert status == 503
    assert body == {"status": "unavailable", "checks": {"postgres": "down", "kafka": "ok"}}
    assert readiness_answer({}) == ({"status": "ok", "checks": {}}, 200)


def test_metrics_exposes_the_default_registry() -> None:
    DEMO_COUNTER.inc(3)
    r = TestClient(_app(ready=True)).get("/metrics")
    assert r.status_code == 200
    assert "cinepulse_test_demo_total 3.0" in r.text


def test_logs_are_json_lines_with_service(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("unit-test", "INFO", json=True)
    get_logger("t").info("thing happened", movie_id=603)
    logging.getLogger("stdlib").warning("from the standard library")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["event"] == "thing happened" and lines[0]["movie_id"] == 603
    assert lines[0]["service"] == "unit-test" and lines[0]["level"] == "info"
    assert lines[1]["event"] == "from the standard library" and lines[1]["level"] == "warning"
