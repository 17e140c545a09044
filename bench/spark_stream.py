"""Spark Structured Streaming into the PostgreSQL star schema, on ``local[2]``, in one run:

* **throughput**: a backlog of :data:`N_EVENTS` events (every type, comments classified) in
  Kafka, read and modelled by the ``events`` query (``availableNow``) into a fresh database:
  events/s from the query's start to its end (Spark's session start excluded);
* **the sink ceiling**: the very fact rows that run wrote, ``COPY``ed into empty copies of
  the fact tables (with their keys and indexes): rows/s. Target: Spark >= 25% of it;
* **freshness**: the gateway and the streaming job running as in production (two processes),
  offered :data:`OFFERED_RATE` events/s for :data:`FRESHNESS_S` seconds in batches of
  :data:`BATCH` (as a frontend SDK sends them); for each acknowledged event, the time from the
  gateway's acknowledgement to the commit of its fact row (PostgreSQL's own commit
  timestamp, ``track_commit_timestamp``). Target: p95 <= 5 s.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.loadgen import clean_env, free_port, serve
from bench.report import Figure, Table, Target
from bench.spark_session import spark_session
from cinepulse_common import topics
from cinepulse_common.kafka import delete_topics, ensure_topics, make_admin, make_producer
from cinepulse_common.rules import active_rules
from cinepulse_common.settings import KafkaSettings, PostgresSettings
from cinepulse_devstack import Stack
from cinepulse_migrations.cli import upgrade

N_EVENTS = 100_000
OFFERED_RATE = 2_000
FRESHNESS_S = 30
BATCH = 50
PARTITIONS = 3
TARGET_RATIO = 0.25
TARGET_P95_S = 5.0
FACTS = ("fact_watch", "fact_rating", "fact_comment", "fact_click")
TOPIC_OF = {
    "watch": topics.USER_WATCH_LOG,
    "rate": topics.USER_RATING_LOG,
    "comment": topics.USER_COMMENT_LOG,
    "click": topics.USER_CLICK_LOG,
}
COMMENTS = [
    "Loved every minute of it, what a joy",
    "This was boring and way too long",
    "The ending scared me half to death",
    "Meh. It was fine I guess",
    "I can't believe they killed him off, so sad",
]


def make_event(i: int, now: datetime) -> dict[str, Any]:
    """A realistic mix: 40% watch, 30% click, 20% rate, 10% comment."""
    kind = ["watch", "watch", "watch", "watch", "click", "click", "click", "rate", "rate"]
    event_type = kind[i % 9] if i % 10 else "comment"
    payloads: dict[str, dict[str, Any]] = {
        "watch": {"position_seconds": 60 * (i % 90), "duration_seconds": 5400},
        "click": {"target": "poster"},
        "rate": {"rating": 0.5 + (i % 10) / 2},
        "comment": {"text": COMMENTS[i % len(COMMENTS)]},
    }
    payload = payloads[event_type]
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "user_id": f"user-{i % 5000}",
        "movie_id": 1 + i % 4000,
        "occurred_at": (now - timedelta(seconds=i % 3600)).isoformat(),
        "session_id": f"s-{i % 20000}",
        "payload": payload,
    }


def produce_backlog(kafka: KafkaSettings, n: int) -> None:
    """``n`` events of :func:`make_event` into the user-event topics of ``kafka``."""
    now = datetime.now(UTC)
    producer = make_producer(kafka)
    for i in range(n):
        ev = make_event(i, now)
        producer.produce(
            kafka.topic(TOPIC_OF[ev["event_type"]]),
            key=ev["user_id"].encode(),
            value=json.dumps(ev).encode(),
        )
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def _fresh_db(stack: Stack, name: str) -> str:
    dsn = stack.postgres.create_database(name, replace=True)
    upgrade(dsn, "head")
    return dsn


def _throughput(stack: Stack, kafka: KafkaSettings, dsn: str, workdir: Path) -> dict[str, float]:
    from cinepulse_spark_jobs.session import make_spark
    from cinepulse_spark_jobs.settings import SparkJobsSettings
    from cinepulse_spark_jobs.stream import start_stream

    produce_backlog(kafka, N_EVENTS)
    settings = SparkJobsSettings(
        kafka=kafka,
        postgres=PostgresSettings(dsn=dsn),
        checkpoint_dir=workdir / "checkpoints",
        metrics_port=0,
    )
    # the session, its query and its JVM are stopped at the block's end, on error too: the
    # next benchmark starts from no Spark at all
    with spark_session(lambda: make_spark(settings, "cinepulse-bench")) as spark:
        spark.sparkContext.setLogLevel("ERROR")
        # the first micro-batch pays the Python workers' start and the model's load: counted
        t0 = time.perf_counter()
        query = start_stream(spark, settings, active_rules(), "events", available_now=True)
        query.awaitTermination()
        elapsed = time.perf_counter() - t0
        if query.exception() is not None:
            raise RuntimeError(f"the Spark query failed: {query.exception()}")
        batches = len(query.recentProgress)
    with psycopg.connect(dsn) as conn:
        facts = sum(
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in FACTS
        )
    assert facts == N_EVENTS, f"{facts} facts for {N_EVENTS} events"

    # the sink ceiling: the same fact rows COPYed into empty copies of the fact tables
    exported: dict[str, bytes] = {}
    with psycopg.connect(dsn) as conn:
        for t in FACTS:
            buf = io.BytesIO()
            with conn.cursor().copy(f"COPY {t} TO STDOUT (FORMAT binary)") as copy:
                for chunk in copy:
                    buf.write(chunk)
            exported[t] = buf.getvalue()
            conn.execute(f"CREATE TABLE bench_{t} (LIKE {t} INCLUDING ALL)")
        conn.commit()
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            for t in FACTS:
                with cur.copy(f"COPY bench_{t} FROM STDIN (FORMAT binary)") as copy:
                    copy.write(exported[t])
        conn.commit()
        copy_s = time.perf_counter() - t0
    return {
        "spark_s": elapsed,
        "spark_rate": N_EVENTS / elapsed,
        "batches": batches,
        "copy_s": copy_s,
        "copy_rate": N_EVENTS / copy_s,
    }


async def _offer(url: str, headers: dict[str, str]) -> tuple[dict[str, float], int, float]:
    """POST batches at a steady rate; returns (event_id -> ack wall time, failures, seconds)."""
    acked: dict[str, float] = {}
    failures = 0
    interval = BATCH / OFFERED_RATE
    n_batches = int(FRESHNESS_S / interval)
    now = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=10, headers=headers) as client:

        async def one(k: int) -> None:
            nonlocal failures
            events = [make_event(k * BATCH + j, now) for j in range(BATCH)]
            for e in events:
                e["occurred_at"] = datetime.now(UTC).isoformat()
            try:
                resp = await client.post(url, json=events)
            except httpx.HTTPError:
                failures += len(events)
                return
            at = time.time()
            if resp.status_code not in (200, 202, 207):
                failures += len(events)
                return
            results = resp.json().get("results", [])
            for e, r in zip(events, results, strict=False):
                if r.get("status") == "accepted":
                    acked[e["event_id"]] = at
                else:
                    failures += 1

        start = time.monotonic()
        tasks = []
        for k in range(n_batches):
            delay = start + k * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(k)))
        await asyncio.gather(*tasks)
        took = time.monotonic() - start
    return acked, failures, took


def _visible(dsn: str) -> dict[str, float]:
    union = " UNION ALL ".join(
        f"SELECT event_id::text, extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM {t}"
        for t in FACTS
    )
    with psycopg.connect(dsn) as conn:
        return {r[0]: float(r[1]) for r in conn.execute(union)}


def _freshness(stack: Stack, kafka: KafkaSettings, dsn: str, workdir: Path) -> dict[str, Any]:
    key = secrets.token_urlsafe(24)
    headers = {"X-Write-Key": key}
    env = clean_env(
        stack.env()
        | {
            "CINEPULSE_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
            "CINEPULSE_AUTH__KEYS": json.dumps({"bench": key}),
            # measured flat out: the default per-key limit (100 events/s) would cap it
            "CINEPULSE_RATE_LIMITS": json.dumps({"bench": "unlimited"}),
            # many users' events: a server key (a frontend key needs a user's token)
            "CINEPULSE_AUTH__WRITE_ROLES": json.dumps({"bench": "server"}),
            "CINEPULSE_LOG_LEVEL": "WARNING",
            "CINEPULSE_POSTGRES__DSN": dsn,
            "CINEPULSE_CHECKPOINT_DIR": str(workdir / "stream-checkpoints"),
            "CINEPULSE_METRICS_PORT": str(free_port()),
        }
    )
    gw_port = free_port()
    gw_cmd = [sys.executable, "-m", "cinepulse_event_gateway", "--port", str(gw_port)]
    spark_cmd = [sys.executable, "-m", "cinepulse_spark_jobs", "stream", "--query", "events"]
    with (
        serve("gateway", gw_cmd, gw_port, env, workdir) as gateway,
        serve("spark", spark_cmd, 0, env, workdir) as spark,
    ):
        url = gateway.url + "/api/events/batch"
        # warm-up: one event, until the stream has written it end to end (the JVM, the
        # Python workers and the classifier are started by then)
        deadline = time.monotonic() + 300
        warm_ids: set[str] = set()
        while not warm_ids:
            if spark.proc.poll() is not None:
                raise RuntimeError(f"the streaming job exited:\n{spark.log.read_text()[-3000:]}")
            try:
                resp = httpx.post(url, json=[make_event(0, datetime.now(UTC))], headers=headers)
                if resp.status_code == 202:
                    warm_ids.update(r["event_id"] for r in resp.json()["results"])
            except httpx.HTTPError:
                time.sleep(1)
        while not warm_ids <= set(_visible(dsn)):
            if spark.proc.poll() is not None:
                raise RuntimeError(f"the streaming job exited:\n{spark.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no fact appeared:\n{spark.log.read_text()[-3000:]}")
            time.sleep(1)
        acked, failures, took = asyncio.run(_offer(url, headers))
        deadline = time.monotonic() + 300
        visible = _visible(dsn)
        while not set(acked) <= set(visible) and time.monotonic() < deadline:
            time.sleep(1)
            visible = _visible(dsn)
    lags = sorted(visible[i] - at for i, at in acked.items() if i in visible)
    missing = sum(1 for i in acked if i not in visible)
    return {
        "acked": len(acked),
        "failures": failures,
        "offered_rate": (len(acked) + failures) / took,
        "missing": missing,
        "p50": statistics.median(lags),
        "p95": lags[int(0.95 * (len(lags) - 1))],
        "max": lags[-1],
    }


def run(stack: Stack) -> list[Table]:
    prefix = f"bench-spark-{secrets.token_hex(4)}-"
    kafka = KafkaSettings(bootstrap_servers=stack.kafka.bootstrap, topic_prefix=prefix)
    user_topics = [kafka.topic(t) for t in topics.USER_EVENT_TOPICS]
    admin = make_admin(kafka)
    ensure_topics(admin, user_topics, partitions=PARTITIONS)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
            workdir = Path(tmp)
            dsn = _fresh_db(stack, "cinepulse_bench_spark")
            t = _throughput(stack, kafka, dsn, workdir)
            delete_topics(admin, user_topics)
            prefix2 = f"bench-fresh-{secrets.token_hex(4)}-"
            kafka2 = KafkaSettings(bootstrap_servers=stack.kafka.bootstrap, topic_prefix=prefix2)
            user_topics = [kafka2.topic(x) for x in topics.USER_EVENT_TOPICS]
            ensure_topics(admin, user_topics, partitions=PARTITIONS)
            dsn2 = _fresh_db(stack, "cinepulse_bench_fresh")
            f = _freshness(stack, kafka2, dsn2, workdir)
    finally:
        delete_topics(admin, user_topics)
        for db in ("cinepulse_bench_spark", "cinepulse_bench_fresh"):
            stack.postgres.drop_database(db)

    table = Table(
        f"Spark streaming into the star schema (local[2]): throughput over a {N_EVENTS:,}-event "
        "backlog",
        "path",
    )
    spark = table.add(
        "Spark events query, availableNow (one fact row per event)",
        {
            "fact rows/s": Figure(t["spark_rate"], "rows/s", better="higher"),
            "time": Figure(t["spark_s"], "s", fmt=".1f"),
            "micro-batches": Figure(t["batches"], "batches"),
        },
        short="Spark events query",
    )
    copy = table.add(
        "COPY of the same fact rows (the sink ceiling)",
        {
            "fact rows/s": Figure(t["copy_rate"], "rows/s", better="higher"),
            "time": Figure(t["copy_s"], "s", fmt=".2f"),
        },
        baseline=True,
        short="COPY",
    )
    spark.compare("fact rows/s", copy, target=Target(">=", TARGET_RATIO), headline=True)
    fresh = Table(
        f"Spark streaming (local[2]): freshness at {f['offered_rate']:,.0f} events/s offered for "
        f"{FRESHNESS_S} s, gateway ack -> fact committed (no baseline: a target only)",
        "measure",
    )
    fresh.add(
        "gateway ack -> fact committed",
        {
            "p50": Figure(f["p50"], "s", better="lower", fmt=".2f"),
            "p95": Figure(
                f["p95"], "s", better="lower", fmt=".2f", target=Target("<=", TARGET_P95_S)
            ),
            "max": Figure(f["max"], "s", better="lower", fmt=".2f"),
            "acknowledged": Figure(f["acked"], "events"),
            "refused": Figure(f["failures"], "events"),
            "never visible": Figure(f["missing"], "events", target=Target("<=", 0)),
        },
        short="ack -> committed",
    )
    table.notes.append(
        "throughput: the events query with availableNow over a backlog (validation, dedup, "
        "normalisation, the emotion classifier on comments; staging, dimensions, facts in one "
        "transaction per micro-batch), from query start to end; the SparkSession's start is "
        "not counted"
    )
    table.notes.append(
        "ceiling: binary COPY of the same fact rows into empty copies of the four fact tables "
        "(keys and indexes included), one transaction; it writes no staging and no dimensions"
    )
    fresh.notes.append(
        "gateway and streaming job as separate processes (as deployed); commit time from "
        "PostgreSQL (pg_xact_commit_timestamp), acknowledgement time from the client"
    )
    return [table, fresh]
