"""Publish records to Kafka and await the broker's acknowledgement from asyncio.

confluent-kafka's producer is thread-based: ``produce()`` only queues; the delivery report
(the acknowledgement under ``acks=all``) arrives in a callback run by ``poll()``. One
background thread polls; each callback resolves an asyncio future on the event loop, so a
request handler can ``await`` the acknowledgement with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
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
        self._settled: deque[tuple[asyncio.Future[None], KafkaError | None, float]] = deque()
        self._wakeup_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._thread.start()
        self.last_error: str | None = None

    # --- librdkafka callbacks (poll thread) -------------------------------------------------
    def _on_error(self, err: KafkaError) -> None:
        metrics.KAFKA_ERRORS.labels(err.name()).inc()
        self.last_error = f"{err.name()}: {err.str()}"
        if err.fatal():
            # an idempotent producer that hit a fatal error (e.g. out-of-order sequence)
            # refuses every later record: the poll loop replaces it
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

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)
            if self._fatal is not None:
                self._replace_producer()
            if self._settled and not self._wakeup_pending and self._loop is not None:
                self._wakeup_pending = True
                try:
                    self._loop.call_soon_threadsafe(self._settle)
                except RuntimeError:  # the loop is closed: shutting down
                    return

    # --- asyncio side -----------------------------------------------------------------------
    def _enqueue(self, loop: asyncio.AbstractEventLoop, record: Record) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = loop.create_future()
        started = time.perf_counter()
        settled = self._settled  # a deque: append and popleft are thread-safe

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            # runs in the poll thread: only record the outcome; the poll loop hands the
            # whole batch of outcomes to the event loop in one wake-up
            settled.append((fut, err, started))

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

    def _settle(self) -> None:
        """On the event loop: resolve the futures of every delivery report received."""
        self._wakeup_pending = False
        settled = self._settled
        now = time.perf_counter()
        observe = metrics.PRODUCE_LATENCY.observe
        while settled:
            fut, err, started = settled.popleft()
            if err is None:
                observe(now - started)
                if not fut.done():  # cancelled after the HTTP deadline
                    fut.set_result(None)
            else:
                metrics.KAFKA_ERRORS.labels(err.name()).inc()
                if not fut.done():
                    fut.set_exception(PublishError(f"{err.name()}: {err.str()}", err.retriable()))
        # a report appended after the loop ended makes the poll thread schedule another run

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
        if len(futures) == 1:  # the common case, without asyncio.wait's bookkeeping
            with contextlib.suppress(TimeoutError, PublishError):
                async with asyncio.timeout(timeout_s):
                    await futures[0]  # cancelled by the timeout
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
        """Readiness: a broker answers a metadata request."""
        md = self._producer.list_topics(timeout=timeout_s)
        if not md.brokers:
            raise KafkaException("no broker in cluster metadata")

    def queue_length(self) -> int:
        return len(self._producer)

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is queued (bounded), stop the poll thread; returns records left."""
        left = self._producer.flush(timeout_s)
        self._stop.set()
        self._thread.join(timeout=2)
        if left:
            log.error("records still unacknowledged at shutdown", count=left)
        return int(left)
