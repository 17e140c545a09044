"""Publish records to Kafka and await the broker's acknowledgement from asyncio.

confluent-kafka's ``produce()`` only queues; the delivery report (the acknowledgement under
``acks=all``) arrives in a callback run by ``poll()``. The event loop itself polls (every
millisecond while records are in flight); each callback resolves an asyncio future, so a
request handler can ``await`` the acknowledgement with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message

from cinepulse_common.kafka import make_producer
from cinepulse_common.logging import get_logger
from cinepulse_common.settings import KafkaSettings
from cinepulse_event_gateway import metrics

log = get_logger(__name__)


class PublishError(Exception):
    """Kafka did not acknowledge the record (unreachable, timed out, or refused it)."""

    def __init__(self, reason: str, retriable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retriable = retriable


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes
    value: bytes


class Publisher(Protocol):
    """What the app needs from a publisher (:class:`KafkaPublisher`, or a test double)."""

    async def publish_many(
        self, records: Sequence[Record], timeout_s: float
    ) -> list[PublishError | None]: ...

    def check(self, timeout_s: float = 2.0) -> None: ...

    def queue_length(self) -> int: ...


class KafkaPublisher:
    def __init__(self, settings: KafkaSettings, *, queue_size: int, ack_timeout_s: float) -> None:
        # librdkafka gives up on a record a little after the HTTP deadline: a record that was
        # answered with 503 may still land later (harmless: downstream dedupes on event_id)
        delivery_ms = int(max(ack_timeout_s * 2, 10.0) * 1000)
        self._config: dict[str, Any] = {
            "queue.buffering.max.messages": queue_size,
            "delivery.timeout.ms": delivery_ms,
            "error_cb": self._on_error,
            "socket.keepalive.enable": True,
            "reconnect.backoff.max.ms": 1000,
        }
        self._settings = settings
        self._producer = make_producer(settings, **self._config)
        self._fatal: KafkaError | None = None
        self.producers_replaced = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poll_handle: asyncio.TimerHandle | None = None
        self._poll_due = 0.0
        self.last_error: str | None = None

    # --- librdkafka callbacks (run inside poll(), on the event loop) ------------------------
    def _on_error(self, err: KafkaError) -> None:
        metrics.KAFKA_ERRORS.labels(err.name()).inc()
        self.last_error = f"{err.name()}: {err.str()}"
        if err.fatal():
            # an idempotent producer that hit a fatal error (e.g. out-of-order sequence)
            # refuses every later record: the next poll replaces it
            self._fatal = err
        if err.code() == KafkaError._ALL_BROKERS_DOWN or err.fatal():
            log.error("kafka error", code=err.name(), reason=err.str(), fatal=err.fatal())
        else:
            log.warning("kafka error", code=err.name(), reason=err.str())

    def _replace_producer(self) -> None:
        old = self._producer
        self._producer = make_producer(self._settings, **self._config)
        self._fatal = None
        self.producers_replaced += 1
        log.error("Kafka producer replaced after a fatal error", replaced=self.producers_replaced)
        # the old producer's records fail (503: the clients resend them with their event_id)
        old.purge()
        old.flush(1.0)

    # --- polling on the event loop ------------------------------------------------------------
    # Delivery reports are served by poll(0) called from the event loop itself: every
    # POLL_INTERVAL_S while records await their acknowledgement, every IDLE_POLL_S otherwise
    # (error callbacks). No poll thread: no GIL hand-offs and no cross-thread wake-ups.
    POLL_INTERVAL_S = 0.001
    IDLE_POLL_S = 1.0

    def _poll(self) -> None:
        self._poll_handle = None
        self._producer.poll(0)
        if self._fatal is not None:
            self._replace_producer()
        self._schedule_poll(self.POLL_INTERVAL_S if len(self._producer) else self.IDLE_POLL_S)

    def _schedule_poll(self, delay: float) -> None:
        loop = self._loop
        if loop is None:
            return
        due = loop.time() + delay
        if self._poll_handle is not None:
            if self._poll_due <= due:
                return
            self._poll_handle.cancel()
        self._poll_due = due
        self._poll_handle = loop.call_at(due, self._poll)

    def _enqueue(self, loop: asyncio.AbstractEventLoop, record: Record) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = loop.create_future()
        started = time.perf_counter()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if fut.done():  # cancelled after the HTTP deadline
                return
            if err is None:
                metrics.PRODUCE_LATENCY.observe(time.perf_counter() - started)
                fut.set_result(None)
            else:
                metrics.KAFKA_ERRORS.labels(err.name()).inc()
                fut.set_exception(PublishError(f"{err.name()}: {err.str()}", err.retriable()))

        try:
            self._producer.produce(
                record.topic, value=record.value, key=record.key, on_delivery=on_delivery
            )
        except BufferError:
            metrics.KAFKA_ERRORS.labels("QUEUE_FULL").inc()
            fut.set_exception(PublishError("producer queue full: Kafka is not keeping up"))
        except KafkaException as exc:
            err = exc.args[0]
            metrics.KAFKA_ERRORS.labels(err.name()).inc()
            fut.set_exception(PublishError(f"{err.name()}: {err.str()}", err.retriable()))
        return fut

    async def publish_many(
        self, records: Sequence[Record], timeout_s: float
    ) -> list[PublishError | None]:
        """Send ``records``; for each, ``None`` once acknowledged, or why it was not.

        Never raises for Kafka trouble: a record not acknowledged within ``timeout_s`` is
        reported as a retriable :class:`PublishError`.
        """
        if not records:
            return []
        loop = self._loop = asyncio.get_running_loop()
        futures = [self._enqueue(loop, r) for r in records]
        self._schedule_poll(self.POLL_INTERVAL_S)
        if len(futures) == 1:  # the common case: a bare timer, no asyncio.wait bookkeeping
            timer = loop.call_later(timeout_s, futures[0].cancel)
            with contextlib.suppress(asyncio.CancelledError, PublishError):
                await futures[0]
            timer.cancel()
        else:
            await asyncio.wait(futures, timeout=timeout_s)
        results: list[PublishError | None] = []
        timed_out = 0
        for fut in futures:
            if not fut.done() or fut.cancelled():
                fut.cancel()
                timed_out += 1
                results.append(PublishError(f"no acknowledgement from Kafka within {timeout_s:g}s"))
            else:
                exc = fut.exception()
                results.append(exc if isinstance(exc, PublishError) else None)
        if timed_out:
            metrics.KAFKA_ERRORS.labels("ACK_TIMEOUT").inc(timed_out)
        return results

    def check(self, timeout_s: float = 2.0) -> None:
        """A broker answers a metadata request (cinepulse_gateway_kafka_reachable; not readiness)."""
        md = self._producer.list_topics(timeout=timeout_s)
        if not md.brokers:
            raise KafkaException("no broker in cluster metadata")

    def queue_length(self) -> int:
        return len(self._producer)

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is queued (bounded) and stop polling; returns records left."""
        if self._poll_handle is not None:
            self._poll_handle.cancel()
            self._poll_handle = None
        left = self._producer.flush(timeout_s)
        if left:
            log.error("records still unacknowledged at shutdown", count=left)
        return int(left)
