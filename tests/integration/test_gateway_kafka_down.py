"""Kafka down: the gateway stays ready and answers 503 with Retry-After itself.

A readiness that followed Kafka took every gateway pod out of its Service during a Kafka
outage, so clients got connection errors instead of the documented 503 + Retry-After. Here a
real gateway process (the real producer) points at a closed port: it must stay ready and
live, refuse each event with 503 + Retry-After and report Kafka in its metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cinepulse_common.settings import KafkaSettings
from tests.factories import event
from tests.integration.services import ServiceProcess, free_port
from tests.integration.test_gateway_archiver import HEADERS, gateway_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    closed = free_port()  # nothing listens there: every connection is refused
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{closed}", topic_prefix="down.")
    port = free_port()
    env = gateway_env(kafka, CINEPULSE_PORT=str(port))
    log = Path(tmp_path_factory.mktemp("gw-down")) / "gateway.log"
    svc = ServiceProcess("cinepulse_event_gateway", env, port, log).start(
        ready_path="/readyz", timeout_s=60
    )
    yield svc
    svc.stop()


def test_ready_and_live_without_kafka(gateway: ServiceProcess) -> None:
    for _ in range(3):  # and it does not flap
        r = httpx.get(gateway.url + "/readyz", timeout=5)
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "ok", "checks": {"gateway": "ok"}}
        assert httpx.get(gateway.url + "/healthz", timeout=5).status_code == 200
        time.sleep(0.5)


def test_events_are_answered_503_with_retry_after(gateway: ServiceProcess) -> None:
    sent = event("rate")
    r = httpx.post(gateway.url + "/api/events", json=sent, headers=HEADERS, timeout=10)
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "2"
    assert r.json()["event_id"] == sent["event_id"]
    r = httpx.post(
        gateway.url + "/api/events/batch",
        json=[event("watch"), event("click")],
        headers=HEADERS,
        timeout=10,
    )
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "2"
    assert {item["status"] for item in r.json()["results"]} == {"unavailable"}
    # still ready after the refusals
    assert httpx.get(gateway.url + "/readyz", timeout=5).status_code == 200


def test_kafka_state_is_in_the_metrics(gateway: ServiceProcess) -> None:
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(gateway.url + "/metrics", timeout=5).text
        if "cinepulse_gateway_kafka_reachable 0.0" in text:
            break
        time.sleep(1)
    assert "cinepulse_gateway_kafka_reachable 0.0" in text
