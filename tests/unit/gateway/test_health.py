"""Health, readiness (which does not follow Kafka) and metrics."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient

from tests.factories import event
from tests.unit.gateway.fakes import FakePublisher, post, post_batch, sample


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_does_not_follow_kafka(client: TestClient, publisher: FakePublisher) -> None:
    """A Kafka outage must not take the pods out of their Service: the app answers 503."""
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"gateway": "ok"}}
    publisher.check_error = RuntimeError("no broker in cluster metadata at kafka-0:9092")
    publisher.fail_all = "_ALL_BROKERS_DOWN: 1/1 brokers are down"
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").status_code == 200
    r = post(client, event())
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "5"


def test_kafka_reachability_is_a_metric(publisher: FakePublisher) -> None:
    from cinepulse_event_gateway import kafka_watch, metrics

    async def changed_from(before: float) -> float:
        """The gauge once it differs from ``before`` (each probe runs in a thread: on a busy
        runner that may take far longer than the interval), within 5 s."""
        deadline = time.monotonic() + 5.0
        while (now := sample("cinepulse_gateway_kafka_reachable")) == before:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        return now

    async def watch_twice() -> list[float]:
        seen: list[float] = []
        metrics.KAFKA_REACHABLE.set(-1)  # neither answer: an earlier test's value is no probe
        task = asyncio.create_task(kafka_watch.watch_kafka(publisher, interval_s=0.01))
        seen.append(await changed_from(-1))
        publisher.check_error = RuntimeError("no broker")
        seen.append(await changed_from(seen[-1]))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    assert asyncio.run(watch_twice()) == [1.0, 0.0]


def test_metrics_count_accepted_events_and_requests(client: TestClient) -> None:
    accepted = ("cinepulse_gateway_events_accepted_total", {"event_type": "rate"})
    requests_ = (
        "cinepulse_gateway_http_requests_total",
        {"route": "/api/events", "method": "POST", "status": "202"},
    )
    unauthorised = (
        "cinepulse_gateway_http_requests_total",
        {"route": "/api/events", "method": "POST", "status": "401"},
    )
    before = [sample(*s) for s in (accepted, requests_, unauthorised)]
    assert post(client, event()).status_code == 202
    assert post_batch(client, [event(), event()]).status_code == 202
    assert client.post("/api/events", json=event()).status_code == 401
    after = [sample(*s) for s in (accepted, requests_, unauthorised)]
    assert after[0] == before[0] + 3
    assert after[1] == before[1] + 1
    assert after[2] == before[2] + 1

    text = client.get("/metrics").text
    assert "cinepulse_gateway_events_accepted_total" in text
    assert "cinepulse_gateway_http_requests_total" in text
