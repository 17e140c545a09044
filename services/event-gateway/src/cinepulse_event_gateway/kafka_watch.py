"""Kafka's reachability as a metric, never as readiness (``/readyz`` does not follow Kafka: see
:mod:`cinepulse_event_gateway.app`)."""

from __future__ import annotations

import asyncio
import contextlib

from cinepulse_common.logging import get_logger
from cinepulse_event_gateway import metrics
from cinepulse_event_gateway.publisher import Publisher

log = get_logger(__name__)

#: how often the gateway asks Kafka for its metadata (cinepulse_gateway_kafka_reachable)
KAFKA_WATCH_INTERVAL_S = 10.0
KAFKA_WATCH_TIMEOUT_S = 5.0


async def watch_kafka(publisher: Publisher, interval_s: float | None = None) -> None:
    """Report Kafka's reachability and the producer queue as metrics, never as readiness.

    A metadata request every ``interval_s`` (off the event loop); a failure is logged once
    when the state changes, not on every probe."""
    interval = KAFKA_WATCH_INTERVAL_S if interval_s is None else interval_s
    reachable: bool | None = None
    while True:
        try:
            # the publisher's check bounds its own metadata request (2 s by default)
            await asyncio.wait_for(asyncio.to_thread(publisher.check), KAFKA_WATCH_TIMEOUT_S)
            now = True
            why = ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure means unreachable; the gateway keeps serving
            now = False
            why = f"{type(exc).__name__}: {exc}"
        metrics.KAFKA_REACHABLE.set(1 if now else 0)
        with contextlib.suppress(Exception):  # a metric must never stop the watch
            metrics.PRODUCER_QUEUE.set(publisher.queue_length())
        if now != reachable:
            if now:
                log.info("Kafka reachable")
            else:
                log.warning("Kafka unreachable; events are answered 503", error=why)
            reachable = now
        await asyncio.sleep(interval)
