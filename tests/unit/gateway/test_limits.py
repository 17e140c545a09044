"""Slow clients and concurrency (OWASP API4): 408, 503 at once, the limits' settings."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cinepulse_common.rules import load_rules
from cinepulse_event_gateway.app import create_app
from cinepulse_event_gateway.publisher import PublishError, Record
from tests.factories import event
from tests.unit.gateway.fakes import KEY, FakePublisher, make_settings, sample

JSON_KEY = {**KEY, "Content-Type": "application/json"}


def _serve_async(app: FastAPI, session: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    """Run ``session`` against the app on this thread's event loop (lifespan included):
    requests can then overlap, and a body can arrive as slowly as the test likes."""

    async def run() -> Any:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
                return await session(c)

    return asyncio.run(run())


@pytest.mark.parametrize("path", ["/api/events", "/api/events/batch"])
def test_a_body_slower_than_the_read_timeout_is_408_and_not_published(
    publisher: FakePublisher, path: str
) -> None:
    data: Any = event() if path == "/api/events" else [event()]
    body = json.dumps(data).encode()
    app = create_app(
        make_settings(limits={"body_read_timeout_s": 0.3}), publisher=publisher, rules=load_rules()
    )

    async def chunks(pause_s: float) -> AsyncIterator[bytes]:
        step = len(body) // 4 + 1
        for i in range(0, len(body), step):
            yield body[i : i + step]
            await asyncio.sleep(pause_s)

    async def session(c: httpx.AsyncClient) -> tuple[httpx.Response, float, httpx.Response]:
        start = time.monotonic()
        # four pieces 1 s apart: each on its own is quick, the whole body takes 4 s
        slow = await c.post(path, content=chunks(1.0), headers=JSON_KEY)
        elapsed = time.monotonic() - start
        # the same body in pieces, in time: accepted
        prompt = await c.post(path, content=chunks(0), headers=JSON_KEY)
        return slow, elapsed, prompt

    before = sample("cinepulse_gateway_body_read_timeouts_total")
    slow, elapsed, prompt = _serve_async(app, session)
    assert slow.status_code == 408, slow.text
    assert slow.json()["detail"] == "request body not received within 0.3 s"
    assert slow.headers["connection"] == "close"
    # answered at the 0.3 s deadline, not once the body was in (4 s): the margin is wide so
    # that a busy machine cannot fail it
    assert elapsed < 3.0
    assert sample("cinepulse_gateway_body_read_timeouts_total") == before + 1
    assert prompt.status_code == 202, prompt.text
    assert len(publisher.published) == 1  # the prompt one only


class GatedPublisher(FakePublisher):
    """Holds every publish until ``gate`` is set: the requests stay in the app."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = 0

    async def publish_many(
        self, records: Sequence[Record], timeout_s: float
    ) -> list[PublishError | None]:
        self.waiting += 1
        await self.gate.wait()
        return await super().publish_many(records, timeout_s)


def test_a_request_over_the_concurrency_limit_is_503_at_once_but_probes_are_not() -> None:
    publisher = GatedPublisher()
    settings = make_settings(limits={"max_concurrent_requests": 2, "retry_after_s": 7})
    app = create_app(settings, publisher=publisher, rules=load_rules())

    async def session(c: httpx.AsyncClient) -> dict[str, Any]:
        held = [
            asyncio.create_task(c.post("/api/events", json=event(), headers=KEY)),
            asyncio.create_task(c.post("/api/events/batch", json=[event()], headers=KEY)),
        ]
        async with asyncio.timeout(5):
            while publisher.waiting < 2:  # both are inside the app, waiting for Kafka
                await asyncio.sleep(0.01)
        out: dict[str, Any] = {}
        # answered at once (a queued request would wait for the gate: the timeout fails it)
        async with asyncio.timeout(2):
            out["over"] = await c.post("/api/events", json=event(), headers=KEY)
            out["over_batch"] = await c.post("/api/events/batch", json=[event()], headers=KEY)
            for probe in ("/healthz", "/readyz", "/metrics"):
                out[probe] = await c.get(probe)
        publisher.gate.set()
        out["held"] = await asyncio.gather(*held)
        out["after"] = await c.post("/api/events", json=event(), headers=KEY)  # slot freed
        return out

    before = sample("cinepulse_gateway_concurrency_limited_total")
    out = _serve_async(app, session)
    for over in (out["over"], out["over_batch"]):
        assert over.status_code == 503, over.text
        assert over.headers["retry-after"] == "7"
        assert "too many requests" in over.json()["detail"]
    assert sample("cinepulse_gateway_concurrency_limited_total") == before + 2
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert out[probe].status_code == 200, (probe, out[probe].text)
    assert "cinepulse_gateway_concurrency_limited_total" in out["/metrics"].text
    assert [r.status_code for r in out["held"]] == [202, 202]
    assert out["after"].status_code == 202
    assert publisher.waiting == 3  # the refused ones never reached the publisher
    assert len(publisher.acked) == 3


def test_the_limits_default_and_are_validated() -> None:
    limits = make_settings().limits
    assert (limits.max_concurrent_requests, limits.body_read_timeout_s) == (256, 10.0)
    for bad in ({"max_concurrent_requests": 0}, {"body_read_timeout_s": 0}):
        with pytest.raises(ValueError, match="greater than"):
            make_settings(limits=bad)
