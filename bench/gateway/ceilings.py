"""The two ceilings the gateway is measured against, kept apart from the gateway's own load
so each can be read alone: (a) :data:`bare_app`, the HTTP ceiling (run by uvicorn as
``bench.gateway.ceilings:bare_app``), and (b) the raw Kafka producer, in a process of its
own (:func:`kafka_trial`)."""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message
from fastapi import FastAPI, Request
from starlette.responses import Response

from bench.gateway.parameters import KAFKA_MESSAGES
from bench.loadgen import Trial
from cinepulse_common.settings import KafkaSettings

# --------------------------------------------------------------------------- (a) HTTP ceiling

bare_app = FastAPI()
_BARE_ANSWER = b'{"status":"accepted"}'


@bare_app.post("/api/events")
async def _bare_post(request: Request) -> Response:
    json.loads(await request.body())
    return Response(_BARE_ANSWER, status_code=202, media_type="application/json")


# --------------------------------------------------------------------------- (b) Kafka ceiling


def gateway_records(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """(key, value) exactly as the gateway serializes them (``Gateway.record``)."""
    from cinepulse_common.events import EVENT_ADAPTER
    from cinepulse_common.rules import active_rules

    context = {"rules": active_rules()}
    now = datetime.now(UTC)
    out = []
    for e in events:
        event = EVENT_ADAPTER.validate_python(e, context=context)
        event = event.model_copy(update={"received_at": now})
        out.append((event.kafka_key(), EVENT_ADAPTER.dump_json(event)))
    return out


def producer_overrides() -> dict[str, Any]:
    """The gateway's producer settings on top of ``make_producer`` (see KafkaPublisher)."""
    from cinepulse_event_gateway.settings import LimitSettings

    limits = LimitSettings()
    return {
        "queue.buffering.max.messages": limits.max_in_flight_messages,
        "delivery.timeout.ms": int(max(limits.produce_timeout_s * 2, 10.0) * 1000),
        "socket.keepalive.enable": True,
        "reconnect.backoff.max.ms": 1000,
    }


def _kafka_ceiling(
    conn: Connection, bootstrap: str, topic: str, events: list[dict[str, Any]], n: int
) -> None:
    """Child process: produce ``n`` records as fast as the queue allows; send back figures."""
    try:
        from cinepulse_common.kafka import make_producer

        templates = gateway_records(events)
        # fresh event_id per record (the gateway assigns one per event), built before timing
        values = []
        for i in range(n):
            key, value = templates[i % len(templates)]
            old = json.loads(value)["event_id"].encode()
            values.append((key, value.replace(old, str(uuid.uuid4()).encode())))
        producer = make_producer(KafkaSettings(bootstrap_servers=bootstrap), **producer_overrides())
        _wait_metadata(producer, topic)  # connected, partition leaders known: then the clock
        latencies: list[float] = []
        failed: list[str] = []

        def delivered(t0: float) -> Callable[[KafkaError | None, Message], None]:
            def cb(err: KafkaError | None, _msg: Message) -> None:
                if err is None:
                    latencies.append(time.perf_counter() - t0)
                else:
                    failed.append(err.name())

            return cb

        cpu0 = _self_cpu()
        start = time.perf_counter()
        for key, value in values:
            while True:
                try:
                    producer.produce(
                        topic, value=value, key=key, on_delivery=delivered(time.perf_counter())
                    )
                    break
                except BufferError:  # queue full: let librdkafka drain it
                    producer.poll(0.01)
            producer.poll(0)  # run the delivery callbacks that are due
        left = producer.flush(60)
        elapsed = time.perf_counter() - start
        conn.send(
            {
                "elapsed": elapsed,
                "acked": len(latencies),
                "failed": len(failed) + left,
                "errors": sorted(set(failed)),
                "p50": _quantile(latencies, 0.50),
                "p99": _quantile(latencies, 0.99),
                "cores": (_self_cpu() - cpu0) / elapsed,
            }
        )
    except Exception as exc:  # report it to the parent rather than die silently
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def _wait_metadata(producer: Any, topic: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            producer.list_topics(topic, timeout=5)
            return
        except KafkaException:  # e.g. the broker is restarting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)  # every thread, librdkafka's included
    return ru.ru_utime + ru.ru_stime


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def kafka_trial(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> Trial:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_kafka_ceiling,
        args=(child, bootstrap, topic, events, KAFKA_MESSAGES),
        name="bench-kafka-ceiling",
    )
    proc.start()
    child.close()
    try:
        if not parent.poll(90):
            raise RuntimeError("the Kafka ceiling producer did not finish within 90s")
        res = parent.recv()
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    if "error" in res:
        raise RuntimeError(f"Kafka ceiling producer failed: {res['error']}")
    return Trial(
        events_s=res["acked"] / res["elapsed"],
        p50_ms=res["p50"] * 1000,
        p99_ms=res["p99"] * 1000,
        ok=res["acked"],
        failures={f"not acknowledged ({', '.join(res['errors'])})": res["failed"]}
        if res["failed"]
        else {},
        server_cores=res["cores"],  # the producer process is the "server" here
    )
