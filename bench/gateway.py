"""Event gateway throughput against the real local Kafka, next to its two ceilings, in one run.

* (a) HTTP ceiling: :data:`bare_app`, a FastAPI app whose ``POST /api/events`` only parses
  the JSON body and answers 202 - the same uvicorn (uvloop, httptools) as the gateway, no
  Kafka. The gateway's single-event path is compared with it (c/a).
* (b) Kafka ceiling: the raw confluent-kafka producer (``make_producer``, acks=all,
  idempotent, the gateway's overrides) sending the records the gateway would write, in its
  own process. The gateway's batch path is compared with it (d/b).
* (c) the gateway, one event per request (``POST /api/events``);
* (d) the gateway, 100 events per request (``POST /api/events/batch``).

HTTP load comes from ``hey`` (a Go binary, its own process; :mod:`bench.loadgen`); its CPU
time is measured next to the server's so the table says whether the generator was the
bottleneck. Every topic
lives under a prefix unique to the run and is deleted at the end.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from fastapi import FastAPI, Request
from starlette.responses import Response

from bench.loadgen import (
    Server,
    Trial,
    clean_env,
    free_port,
    hey,
    hey_binary,
    latency_figures,
    median,
    serve,
)
from bench.report import Figure, Table, Target
from cinepulse_common import topics
from cinepulse_common.kafka import delete_topics, ensure_topics, make_admin, make_consumer
from cinepulse_common.settings import KafkaSettings
from cinepulse_devstack import Stack
from cinepulse_devstack.procs import tail

ROUNDS = 3  # trials per path; the median is reported
WARMUP_S = 2
TRIAL_S = 8
SINGLE_CONCURRENCY = 64
BATCH_CONCURRENCY = 8
BATCH_SIZE = 100
KAFKA_MESSAGES = 100_000
PARTITIONS = 3
#: targets from the gateway's design (reported, not enforced)
TARGET_SINGLE = 0.7
TARGET_BATCH = 0.5
TARGET_P99_MS = 50.0
#: the steady-load trial: events/s the gateway is offered, spread over this many clients
STEADY_RATE = 1000
STEADY_CONCURRENCY = 16

# --------------------------------------------------------------------------- (a) HTTP ceiling

bare_app = FastAPI()
_BARE_ANSWER = b'{"status":"accepted"}'


@bare_app.post("/api/events")
async def _bare_post(request: Request) -> Response:
    json.loads(await request.body())
    return Response(_BARE_ANSWER, status_code=202, media_type="application/json")


# --------------------------------------------------------------------------- request bodies


def rate_event(user_id: str, occurred_at: datetime) -> dict[str, Any]:
    """A valid rate event as a frontend sends it: no event_id, the gateway assigns one."""
    return {
        "event_type": "rate",
        "user_id": user_id,
        "movie_id": 603,
        "occurred_at": occurred_at.isoformat(),
        "payload": {"rating": 4.5},
    }


def batch_events(occurred_at: datetime) -> list[dict[str, Any]]:
    # distinct users, so the records spread over the partitions as real traffic does
    return [rate_event(f"u-{i}", occurred_at) for i in range(BATCH_SIZE)]


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


# --------------------------------------------------------------------------- processes


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(  # noqa: S310 - a local http URL
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(server: Server, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """Until the server answers ``path`` with 202 (a check of the body too); its answer."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited at start-up:\n{tail(server.log)}")
        try:
            status, answer = post(server.url + path, body, headers)
        except (ConnectionError, urllib.error.URLError):
            time.sleep(0.2)
            continue
        if status != 202:
            raise RuntimeError(f"{server.name} answered {status} to {path}: {answer[:500]!r}")
        return answer
    raise RuntimeError(f"{server.name} did not answer within 60s:\n{tail(server.log)}")


# --------------------------------------------------------------------------- Kafka offsets


def topic_records(settings: KafkaSettings, topic: str) -> int:
    """Records in ``topic``: the sum of its partitions' high watermarks (it starts empty)."""
    consumer = make_consumer(settings, group_id=f"bench-watermarks-{uuid.uuid4().hex}")
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        )
    finally:
        consumer.close()


# --------------------------------------------------------------------------- the benchmark


@dataclass
class Load:
    """Runs hey against a server; for the gateway, also checks Kafka got every 202."""

    hey: str
    headers: dict[str, str]
    kafka: KafkaSettings
    topic: str
    broker_pid: int | None
    acked_events: int = 0  # events hey saw answered 202 by the gateway (warm-ups included)
    topic_growth: int = 0  # records the topic gained over those same runs

    def __call__(
        self,
        server: Server,
        path: str,
        body: Path,
        concurrency: int,
        per_request: int,
        *,
        kafka_checked: bool,
        qps: float | None = None,
    ) -> Trial:
        before = topic_records(self.kafka, self.topic) if kafka_checked else 0
        warm, trial = (
            hey(
                self.hey,
                server,
                path,
                body,
                self.headers,
                seconds=seconds,
                concurrency=concurrency,
                per_request=per_request,
                broker_pid=self.broker_pid,
                qps=qps,
            )
            for seconds in (WARMUP_S, TRIAL_S)
        )
        if kafka_checked:
            self.acked_events += warm.ok + trial.ok
            self.topic_growth += topic_records(self.kafka, self.topic) - before
        # a failed answer in the warm-up counts too
        trial.failures = {
            k: warm.failures.get(k, 0) + trial.failures.get(k, 0)
            for k in warm.failures | trial.failures
        }
        return trial


def run(stack: Stack) -> Table:
    prefix = f"bench-{secrets.token_hex(4)}-"
    kafka = KafkaSettings(bootstrap_servers=stack.kafka.bootstrap, topic_prefix=prefix)
    user_topics = [kafka.topic(t) for t in topics.USER_EVENT_TOPICS]
    rating_topic = kafka.topic(topics.USER_RATING_LOG)
    key = secrets.token_urlsafe(24)
    broker_pid = stack.kafka.pid()
    load = Load(hey_binary(stack), {"X-Write-Key": key}, kafka, rating_topic, broker_pid)

    now = datetime.now(UTC)  # occurred_at: the rules allow 300 s of future skew, 400 days past
    single = json.dumps(rate_event("u-1042", now)).encode()
    batch_list = batch_events(now)
    batch = json.dumps(batch_list).encode()
    env = clean_env(
        stack.env()
        | {
            "CINEPULSE_KAFKA__TOPIC_PREFIX": prefix,
            "CINEPULSE_AUTH__KEYS": json.dumps({"bench": key}),
            # measured flat out: the default per-key limit (100 events/s) would cap it
            "CINEPULSE_RATE_LIMITS": json.dumps({"bench": "unlimited"}),
            "CINEPULSE_LOG_LEVEL": "WARNING",
        }
    )
    bare_port, gw_port = free_port(), free_port()
    bare_cmd = [sys.executable, "-m", "uvicorn", "bench.gateway:bare_app", "--loop", "uvloop"]
    bare_cmd += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    bare_cmd += ["--host", "127.0.0.1", "--port", str(bare_port)]
    gw_cmd = [sys.executable, "-m", "cinepulse_event_gateway"]
    gw_cmd += ["--host", "127.0.0.1", "--port", str(gw_port)]

    trials: dict[str, list[Trial]] = {"a": [], "b": [], "c": [], "d": [], "s": []}
    admin = make_admin(kafka)
    ensure_topics(admin, user_topics, partitions=PARTITIONS)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
            workdir = Path(tmp)
            single_file, batch_file = workdir / "single.json", workdir / "batch.json"
            single_file.write_bytes(single)
            batch_file.write_bytes(batch)
            try:
                with (
                    serve("bare", bare_cmd, bare_port, env, workdir) as bare,
                    serve("gateway", gw_cmd, gw_port, env, workdir) as gateway,
                ):
                    # up, and every body is valid (202; each batch event accepted)
                    wait_ready(bare, "/api/events", single, load.headers)
                    wait_ready(gateway, "/api/events", single, load.headers)
                    answer = wait_ready(gateway, "/api/events/batch", batch, load.headers)
                    assert json.loads(answer)["accepted"] == BATCH_SIZE, answer
                    load.acked_events = 1 + BATCH_SIZE
                    load.topic_growth = topic_records(kafka, rating_topic)

                    # interleaved, so drift (other load, GC, caches) hits every path alike
                    for _ in range(ROUNDS):
                        trials["a"].append(
                            load(
                                bare,
                                "/api/events",
                                single_file,
                                SINGLE_CONCURRENCY,
                                1,
                                kafka_checked=False,
                            )
                        )
                        trials["c"].append(
                            load(
                                gateway,
                                "/api/events",
                                single_file,
                                SINGLE_CONCURRENCY,
                                1,
                                kafka_checked=True,
                            )
                        )
                        trials["d"].append(
                            load(
                                gateway,
                                "/api/events/batch",
                                batch_file,
                                BATCH_CONCURRENCY,
                                BATCH_SIZE,
                                kafka_checked=True,
                            )
                        )
                        trials["b"].append(
                            kafka_trial(kafka.bootstrap_servers, rating_topic, batch_list)
                        )
                    # latency at a steady load below saturation (what a sized deployment
                    # sees), next to the saturated figures above
                    trials["s"].append(
                        load(
                            gateway,
                            "/api/events",
                            single_file,
                            STEADY_CONCURRENCY,
                            1,
                            kafka_checked=True,
                            qps=STEADY_RATE / STEADY_CONCURRENCY,
                        )
                    )
            finally:
                gateway_log = (workdir / "gateway.log").read_text(errors="replace")
    finally:
        delete_topics(admin, user_topics)

    table = _table(trials, load.acked_events, load.topic_growth, gateway_log)
    if stack.kafka.pid() != broker_pid:
        table.notes.append(
            f"WARNING: the Kafka broker was restarted during the run (pid {broker_pid} -> "
            f"{stack.kafka.pid()}): some figures are not representative"
        )
    return table


def _table(
    trials: dict[str, list[Trial]], acked_events: int, topic_growth: int, gateway_log: str
) -> Table:
    table = Table(
        f"Event gateway into Kafka (median of {ROUNDS}; hey {TRIAL_S}s trials after "
        f"{WARMUP_S}s warm-up, {os.cpu_count()} cores shared by everything)",
        "path",
    )
    names = {
        "a": f"(a) HTTP ceiling: bare FastAPI, 1 event/request, c={SINGLE_CONCURRENCY}",
        "c": f"(c) gateway POST /api/events, 1 event/request, c={SINGLE_CONCURRENCY}",
        "b": f"(b) Kafka ceiling: raw producer, {KAFKA_MESSAGES:,} records",
        "d": f"(d) gateway POST /api/events/batch, {BATCH_SIZE} events/request, "
        f"c={BATCH_CONCURRENCY}",
        "s": f"(c') gateway POST /api/events at a steady {STEADY_RATE:,} events/s, "
        f"c={STEADY_CONCURRENCY}",
    }
    shorts = {
        "a": "(a) HTTP ceiling",
        "c": "(c) gateway, single",
        "b": "(b) Kafka ceiling",
        "d": f"(d) gateway, batch of {BATCH_SIZE}",
        "s": f"(c') gateway, steady {STEADY_RATE:,}/s",
    }
    rows = {}
    for k in ("a", "c", "b", "d", "s"):
        ts = trials[k]
        rows[k] = table.add(
            names[k],
            {
                "events/s": Figure(median(ts, "events_s"), "events/s", better="higher"),
                **latency_figures(ts, TARGET_P99_MS if k == "s" else None),
                "events/s per server core": Figure(
                    statistics.median(t.events_s / t.server_cores for t in ts),
                    "events/s/core",
                    better="higher",
                ),
            },
            baseline=k in ("a", "b"),
            short=shorts[k],
        )
    rows["c"].compare("events/s", rows["a"], target=Target(">=", TARGET_SINGLE), headline=True)
    rows["d"].compare("events/s", rows["b"], target=Target(">=", TARGET_BATCH))
    rows["s"].compare("events/s", rows["a"])
    # per core: the figure least disturbed by whatever else runs on the machine
    rows["c"].compare("events/s per server core", rows["a"])
    rows["d"].compare("events/s per server core", rows["b"])

    for k in ("a", "c", "d"):
        ts = trials[k]
        table.notes.append(
            f"CPU ({k}, cores, medians): hey {median(ts, 'client_cores'):.2f} while the "
            f"server used {median(ts, 'server_cores'):.2f}, the Kafka broker "
            f"{median(ts, 'broker_cores'):.2f} and the rest of the machine "
            f"{median(ts, 'other_cores'):.2f}"
        )
    table.notes.append(
        f"CPU (b): the producer process used {median(trials['b'], 'server_cores'):.2f} "
        "cores; its latency is produce() to delivery callback while producing flat out "
        "(librdkafka's linger.ms=5 batching and queueing included)"
    )
    table.notes.append(
        "events/s per server core (the server's own CPU time) is the figure least disturbed "
        "by whatever else runs on the machine"
    )
    busiest = max(t.other_cores for k in ("a", "c", "d") for t in trials[k])
    if busiest > 0.25:
        table.notes.append(
            f"the machine was not quiet: other processes used up to {busiest:.2f} of its "
            f"{os.cpu_count()} cores during a trial; absolute rates are lower than on an idle "
            "machine, compare the per-core figures"
        )
    table.notes.append(
        "(a) and (c) send one body over and over (one user_id: one partition); the batch "
        f"holds {BATCH_SIZE} users (all {PARTITIONS} partitions); (b) sends the batch's "
        "records, as the gateway serializes them, with a fresh event_id each"
    )
    failures: dict[str, int] = {}
    for k, ts in trials.items():
        for t in ts:
            for what, n in t.failures.items():
                failures[f"({k}) {what}"] = failures.get(f"({k}) {what}", 0) + n
    if failures:
        table.notes.append(
            "FAILED answers: " + "; ".join(f"{w}: {n:,}" for w, n in sorted(failures.items()))
        )
    else:
        table.notes.append("every HTTP answer was 202; every producer record was acknowledged")
    ok = topic_growth >= acked_events
    table.notes.append(
        f"correctness: the prefixed user_rating_log grew by {topic_growth:,} records over the "
        f"gateway runs, for {acked_events:,} events answered 202 "
        f"({'OK' if ok else 'FAILED: records missing'})"
    )
    warnings = [line for line in gateway_log.splitlines() if line.strip()]
    if warnings:
        table.notes.append(f"the gateway logged {len(warnings)} line(s) at WARNING or above")
    return table
