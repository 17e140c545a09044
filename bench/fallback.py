"""The pandas fallback against the Spark batch path, on the same input, in one run:

* the input: :data:`N_EVENTS` events (the realistic mix of :mod:`bench.spark_stream`,
  comments classified) produced to Kafka, and the same records, at the positions Kafka gave
  them, stored in MongoDB as the archiver stores them;
* **the fallback**: ``cinepulse-fallback run`` over the window, as its own process (Python's
  start and the classifier's load included), once per chunk size in :data:`CHUNK_SIZES`:
  events/s on the wall clock, the run's own rate, and the process's peak RSS;
* **Spark**: ``cinepulse-spark-jobs stream --query events --available-now`` as its own
  process (``local[2]``) over the same Kafka input: events/s on the wall clock (the JVM's
  and the session's start included), and the peak RSS of the driver, its JVM and its Python
  workers together (polled from /proc every 0.1 s).

Both write the same 100,000 facts (checked) into fresh databases; peak memory is the point
of the chunk sizes: it follows the chunk, not the window.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.loadgen import clean_env
from bench.report import Figure, Table
from bench.spark_stream import FACTS, PARTITIONS, TOPIC_OF, make_event
from cinepulse_archiver.documents import Source, to_document
from cinepulse_common import topics
from cinepulse_common.kafka import delete_topics, ensure_topics, make_admin, make_producer
from cinepulse_common.mongo import make_client
from cinepulse_common.settings import KafkaSettings, MongoSettings
from cinepulse_devstack import Stack
from cinepulse_migrations.cli import upgrade

N_EVENTS = 100_000
CHUNK_SIZES = (5_000, 20_000)
INSERT_BATCH = 10_000


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every descendant (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def measure(cmd: Sequence[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run ``cmd``; its wall time, exit code, peak RSS of its process tree (polled) and its
    own max RSS (from the kernel, ``wait4``)."""
    peak = 0
    with log.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()

        def poll() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss(proc.pid))
                done.wait(0.1)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
        except BaseException:  # interrupted: leave no fallback or Spark run (nor its JVM)
            proc.kill()
            proc.wait()
            raise
        finally:
            done.set()
            poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[2:]} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
    return {"wall_s": wall, "peak_tree": peak, "maxrss": usage.ru_maxrss * 1024}


def _input(kafka: KafkaSettings, mongo: MongoSettings) -> tuple[datetime, datetime]:
    """The same events into Kafka and, as the archiver writes them, into MongoDB; returns
    the window of their arrival."""
    now = datetime.now(UTC)
    values: list[tuple[str, bytes]] = []
    positions: list[tuple[str, int, int]] = [("", 0, 0)] * N_EVENTS
    producer = make_producer(kafka)

    def report(i: int) -> Any:
        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                raise RuntimeError(f"Kafka refused record {i}: {err}")
            positions[i] = (msg.topic(), msg.partition(), msg.offset())

        return delivered

    for i in range(N_EVENTS):
        ev = make_event(i, now)
        value = json.dumps(ev).encode()
        values.append((ev["user_id"], value))
        producer.produce(
            kafka.topic(TOPIC_OF[ev["event_type"]]),
            key=ev["user_id"].encode(),
            value=value,
            on_delivery=report(i),
        )
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    arrived = datetime.now(UTC)
    with make_client(mongo) as client:
        collection = client[mongo.database]["user_logs"]
        batch = []
        for (key, value), (topic, partition, offset) in zip(values, positions, strict=True):
            source = Source(topic, partition, offset, key.encode(), None)
            batch.append(to_document(source, value, arrived, movie_topic=False)[1])
            if len(batch) == INSERT_BATCH:
                collection.insert_many(batch, ordered=False)
                batch = []
        if batch:
            collection.insert_many(batch, ordered=False)
        assert collection.count_documents({}) == N_EVENTS
    return arrived - timedelta(minutes=1), arrived + timedelta(minutes=1)


def _facts(dsn: str, schema: str) -> int:
    with psycopg.connect(dsn) as conn:
        return sum(
            conn.execute(f"SELECT count(*) FROM {schema}.{t}").fetchone()[0]  # type: ignore[index]
            for t in FACTS
        )


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def run(stack: Stack) -> Table:
    tag = secrets.token_hex(4)
    kafka = KafkaSettings(bootstrap_servers=stack.kafka.bootstrap, topic_prefix=f"bench-fb-{tag}-")
    mongo = MongoSettings(url=stack.mongo.url, database=f"bench_fb_{tag}")
    user_topics = [kafka.topic(t) for t in topics.USER_EVENT_TOPICS]
    admin = make_admin(kafka)
    ensure_topics(admin, user_topics, partitions=PARTITIONS)
    databases = {"spark": "cinepulse_bench_fb_spark", "fallback": "cinepulse_bench_fb_pandas"}
    results: dict[str, dict[str, Any]] = {}
    try:
        start, end = _input(kafka, mongo)
        dsns = {}
        for name, db in databases.items():
            dsns[name] = stack.postgres.create_database(db, replace=True)
            upgrade(dsns[name], "head")
        with tempfile.TemporaryDirectory(prefix="bench-fb-") as tmp:
            workdir = Path(tmp)
            base = clean_env(
                stack.env()
                | {
                    "CINEPULSE_LOG_LEVEL": "WARNING",
                    "CINEPULSE_MONGO__DATABASE": mongo.database,
                    "CINEPULSE_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
                }
            )
            for size in CHUNK_SIZES:
                env = base | {"CINEPULSE_POSTGRES__DSN": dsns["fallback"]}
                cmd = [sys.executable, "-m", "cinepulse_pandas_fallback", "run"]
                cmd += ["--from", start.isoformat(), "--to", end.isoformat()]
                cmd += ["--chunk-size", str(size)]
                log = workdir / f"fallback-{size}.log"
                m = measure(cmd, env, log)
                summary = json.loads(log.read_text().strip().splitlines()[-1])
                assert summary["status"] == "succeeded" and summary["events_read"] == N_EVENTS
                m |= {k: summary[k] for k in ("chunks", "read_s", "transform_s", "load_s")}
                m["run_s"] = summary["seconds"]
                with psycopg.connect(dsns["fallback"]) as conn:
                    m["facts"] = sum(
                        conn.execute(
                            f"SELECT count(*) FROM fallback.{t} WHERE run_id = %s",
                            (summary["run_id"],),
                        ).fetchone()[0]  # type: ignore[index]
                        for t in FACTS
                    )
                results[f"fallback-{size}"] = m
            env = base | {
                "CINEPULSE_POSTGRES__DSN": dsns["spark"],
                "CINEPULSE_CHECKPOINT_DIR": str(workdir / "checkpoints"),
                "CINEPULSE_METRICS_PORT": "0",
            }
            cmd = [sys.executable, "-m", "cinepulse_spark_jobs", "stream", "--query", "events"]
            cmd += ["--available-now"]
            m = measure(cmd, env, workdir / "spark.log")
            m["facts"] = _facts(dsns["spark"], "public")
            results["spark"] = m
    finally:
        delete_topics(admin, user_topics)
        with make_client(mongo) as client:
            client.drop_database(mongo.database)
        for db in databases.values():
            stack.postgres.drop_database(db)

    for name, m in results.items():
        assert m["facts"] == N_EVENTS, f"{name}: {m['facts']} facts for {N_EVENTS} events"
    spark = results["spark"]
    table = Table(
        f"Pandas fallback vs the Spark batch path, {N_EVENTS:,} events (same input, same run)",
        "path",
    )
    rows = {}
    for size in CHUNK_SIZES:
        m = results[f"fallback-{size}"]
        rows[size] = table.add(
            f"fallback, chunks of {size:,} ({m['chunks']} chunks)",
            {
                "wall time": Figure(m["wall_s"], "s", fmt=".1f"),
                "events/s (wall)": Figure(N_EVENTS / m["wall_s"], "events/s", better="higher"),
                "peak RSS": Figure(
                    m["peak_tree"] / 2**20,
                    "MiB",
                    better="lower",
                    detail=f"(kernel max {_mib(m['maxrss'])})",
                ),
                "run": Figure(m["run_s"], "s", fmt=".1f"),
                "MongoDB read": Figure(m["read_s"], "s", fmt=".1f"),
                "transform": Figure(
                    m["transform_s"],
                    "s",
                    fmt=".1f",
                    detail=f"({N_EVENTS / m['transform_s']:,.0f}/s)",
                ),
                "load": Figure(m["load_s"], "s", fmt=".1f"),
            },
            short=f"fallback, chunks of {size:,}",
        )
    spark_row = table.add(
        "Spark, events query, availableNow, local[2] (Kafka read, transform and load in "
        "micro-batches)",
        {
            "wall time": Figure(spark["wall_s"], "s", fmt=".1f"),
            "events/s (wall)": Figure(N_EVENTS / spark["wall_s"], "events/s", better="higher"),
            "peak RSS": Figure(
                spark["peak_tree"] / 2**20, "MiB", better="lower", detail="(driver + JVM + workers)"
            ),
        },
        baseline=True,
        short="Spark, availableNow",
    )
    for size in CHUNK_SIZES:
        rows[size].compare("events/s (wall)", spark_row, headline=size == max(CHUNK_SIZES))
        rows[size].compare("peak RSS", spark_row)
    table.notes.append(
        "wall time: each path as its own process, from start to exit (interpreter, imports, "
        "the classifier's load, Spark's JVM and session included); 'run' is the fallback's own "
        "timer, from its first MongoDB read to its commit (MongoDB read, transform and load "
        "are its parts)"
    )
    table.notes.append(
        "both transform and load the same 100,000 events (validation, dedup, normalisation, "
        "emotion labels on comments) with the shared load step; the fallback writes facts and "
        "quarantine into the fallback schema, Spark also staging and dimensions into public"
    )
    table.notes.append(
        "peak RSS: the process tree polled from /proc every 0.1 s; kernel max: the fallback "
        "process's own ru_maxrss (wait4)"
    )
    table.notes.append(
        "MongoDB read: time the fallback waited for its cursor; the local stack's MongoDB is "
        "FerretDB on SQLite, which sorts the whole window before its first batch and serves "
        "about 3,000 documents/s, so most of a run's time is FerretDB's (a mongod streams the "
        "sorted window from an index)"
    )
    return table
