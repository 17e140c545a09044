from __future__ import annotations

import json
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import Counter

from cinepulse_common.logging import configure_logging, get_logger
from cinepulse_common.observability import add_health_routes

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


def test_readyz_names_the_failing_check() -> None:
    r = TestClient(_app(ready=False)).get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["checks"]["kafka"] == "ok"
    assert body["checks"]["database"] == "error: ConnectionError: connection refused"
    assert TestClient(_app(ready=True)).get("/readyz").status_code == 200


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
