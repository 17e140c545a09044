"""Fault drills of issue 21 ("nothing acknowledged lost"): processes that die or double up.

* the gateway SIGKILLed with requests in flight, its client resending every request it got
  no answer to (with ``event_id``, or without it under an ``Idempotency-Key``);
* PostgreSQL crashed (``pg_ctl stop -m immediate``) while a Spark micro-batch is landed or
  loaded: crash recovery empties the UNLOGGED landing tables;
* a second Spark events driver (``stream --available-now``) started beside the streaming
  job, on the same landing tables.

Each drill runs like those of ``test_drills.py``: events through the real gateway at a steady
rate, the fault in the middle, recovery, the pipeline quiet, then lost = 0 and duplicated = 0
and a check that the fault really happened.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from cinepulse_common.mongo import make_client
from cinepulse_common.settings import MongoSettings
from cinepulse_devstack import Stack
from cinepulse_devstack.procs import pid_alive
from cinepulse_spark_jobs.stream import LANDING, landing_lock_key
from tests.drills.harness import (
    Record,
    Sender,
    assert_clean,
    checkpoint_batches,
    commits_file,
    drill_row,
    now,
    raw_documents,
    restarts_note,
    supervise,
    tally,
    wait_for,
    wait_quiet,
    wait_until_acknowledged,
    window,
)
from tests.drills.resending import ResendingSender

# the first drill also pays for the private stack's start and warm-up (2-5 min on 2 cores)
pytestmark = [pytest.mark.drill, pytest.mark.timeout(1200)]

LOCK_WAIT = "another driver holds the landing tables; waiting"
BATCH_WRITTEN = "events batch written"


def _records_between(stack: Stack, start: datetime, end: datetime) -> Counter[str]:
    """Raw documents per event id of every record Kafka stamped in ``[start, end)``."""
    mongo = MongoSettings(url=SecretStr(stack.mongo.url))
    with make_client(mongo) as client:
        docs = client[mongo.database]["user_logs"].find(
            {"timestamp": {"$gte": start, "$lt": end}}, projection={"event_id": 1}
        )
        return Counter(str(d.get("event_id")) for d in docs)


# --------------------------------------------------------------------------- the gateway


def test_gateway_sigkill_with_requests_in_flight(stack: Stack, record: Record) -> None:
    """SIGKILL the gateway while requests are in flight; restart it. The client resends every
    request it got no answer to (or a 503) until answered: with the same ``event_id``, or the
    same ``Idempotency-Key`` and content, so a resent event keeps its id and is one fact."""
    t0, started = time.monotonic(), now()
    sender = ResendingSender(stack, count=1600, seed=21, rate_per_s=50)
    sender.start()
    wait_for(
        "300 events acknowledged",
        lambda: len(sender.acknowledged_ids) >= 300,
        timeout_s=60,
        interval_s=0.1,
    )
    old = stack.gateway.pid()
    assert old is not None
    # at least two requests sent 3 ms ago or more and not answered: in the gateway's hands
    wait_for(
        "requests in flight", lambda: sender.in_flight(0.003) >= 2, timeout_s=60, interval_s=0.0005
    )
    # SIGKILL its process group at once (it leads it: spawned in a session of its own);
    # Component.kill walks /proc first, long enough for the requests to be answered
    os.killpg(old, signal.SIGKILL)
    killed = time.monotonic()
    wait_for("the gateway's processes gone", lambda: not pid_alive(old), timeout_s=30)
    time.sleep(3.0)  # down as a restarting pod would be; the client keeps trying
    stack.up(["event-gateway"])
    down_s = time.monotonic() - killed
    new = stack.gateway.pid()
    assert new is not None and new != old and stack.gateway.alive()
    assert sender.is_alive(), "the send ended before the gateway was back: not mid-send"
    sender.finish()
    acked = sender.acknowledged_ids
    end = now()
    restarted: list[str] = []
    report = wait_quiet(stack, *window(started, end), acked, restarted)
    t = tally(stack, sender.ids, acked)
    raw = raw_documents(stack, sender.ids)
    # an attempt cut in flight or answered 503 after Kafka took the event, resent: a second
    # Kafka record of the same event. The archive keeps one document per Kafka record (its
    # backup, by design); the event is one fact. An id may have as many extra documents as
    # it had such attempts, no more; copies beyond that, of any other id, or records of ids
    # never sent, are duplicates.
    allowed = sender.unacknowledged_attempts()
    kept = sum(min(n - 1, allowed.get(i, 0)) for i, n in raw.items() if n > 1)
    other_raw = t.duplicate_raw - kept
    beyond = {i: n for i, n in raw.items() if n - 1 > allowed.get(i, 0)}
    known = set(sender.ids)
    strays = sum(n for i, n in _records_between(stack, started, end).items() if i not in known)
    mismatched = sender.mismatched()
    cut, refused = sender.total("cut"), sender.total("refused")
    record(
        drill_row(
            "SIGKILL the gateway with requests in flight (client resends)",
            t,
            t0,
            f"gateway pid {old} SIGKILLed after 300 acks with requests in flight, down "
            f"{down_s:.0f} s, restarted as {new}; the client resent every unanswered request "
            f"({len(sender.requests)} requests, half without event_id under an Idempotency-Key,"
            f" {sender.total('attempts')} attempts: {cut} cut in flight, {refused} refused, "
            f"{sender.total('unavailable')} events answered 503); {len(mismatched)} resent "
            f"events answered another id than the first; {kept} extra raw records of "
            f"{sum(1 for i, n in raw.items() if n > 1 and i not in beyond)} resent events kept "
            "in the archive (one per Kafka record, one fact; at most one per attempt of that "
            f"event cut in flight or answered 503: {sum(allowed.values())} such attempts of "
            f"{len(allowed)} events); {other_raw} raw records beyond that; {strays} records "
            "of unknown ids" + restarts_note(restarted),
            duplicated=t.duplicate_facts + other_raw + strays,
        )
    )
    assert cut > 0, "no request was in flight when the gateway was killed"
    assert refused > 0, "no request was refused while the gateway was down"
    assert len(acked) == len(sender.ids), "an event was never acknowledged"
    assert not mismatched, f"resent events got new ids: {mismatched[:3]}"
    assert t.lost == 0, f"{t.lost} acknowledged events lost, e.g. {t.lost_examples}"
    assert t.duplicate_facts == 0, f"{t.duplicate_facts} duplicate fact rows"
    assert other_raw == 0, (
        f"{other_raw} raw documents beyond one per event plus one per unacknowledged attempt "
        f"of it, e.g. (id, documents, attempts) "
        f"{[(i, n, allowed.get(i, 0)) for i, n in list(beyond.items())[:3]]}"
    )
    assert strays == 0, f"{strays} records of ids the client never sent (a resend got a new id)"
    assert report is not None and not report.drift, report and report.differences


# --------------------------------------------------------------------------- PostgreSQL


def _landing_holder(conn: psycopg.Connection[Any]) -> int | None:
    """The backend pid holding the events query's landing lock (a batch being landed or
    loaded), or None."""
    key = landing_lock_key(LANDING)
    row = conn.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = %s AND objid = %s AND objsubid = 1",
        ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
    ).fetchone()
    return int(row[0]) if row else None


def _count(stack: Stack, table: str) -> int:
    with psycopg.connect(stack.postgres.admin_dsn()) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]


#: crashes tried, each on a later micro-batch, before the drill gives up on hitting one
#: mid-batch (a crash that lands just after a batch's load committed misses it)
CRASH_ATTEMPTS = 3


@dataclass
class Crash:
    """One ``pg_ctl stop -m immediate`` while a micro-batch held the landing lock."""

    batch: int
    holder: int  # the backend that held the landing lock
    planned: int  # the checkpoint at the moment of the stop
    committed: int
    state: str  # the cluster state after the stop
    #: batch not committed in the checkpoint when the stop landed, nor while PostgreSQL was
    #: down: the crash hit it mid-batch (else its load had committed just before: a miss)
    uncommitted: bool
    down_s: float = 0.0
    canary: int = -1  # rows of the UNLOGGED canary after the restart (0: crash recovery)
    landed: int = -1  # rows of the landing tables after the restart

    def describe(self) -> str:
        return (
            f"batch {self.batch} (backend {self.holder} held the landing lock; checkpoint "
            f"planned {self.planned}, committed {self.committed} at the stop; cluster state "
            f"'{self.state}'; down {self.down_s:.0f} s, batch "
            + ("not committed meanwhile: hit mid-batch" if self.uncommitted else "COMMITTED "
               "meanwhile: its load had committed before the stop, a miss")
            + f"; canary {self.canary} rows, landing tables {self.landed} after the restart)"
        )  # fmt: skip


def _arm_canary(dsn: str) -> None:
    """One row in an UNLOGGED table: only a crash recovery empties it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE UNLOGGED TABLE IF NOT EXISTS drill_crash_canary (n int)")
        conn.execute("TRUNCATE drill_crash_canary")
        conn.execute("INSERT INTO drill_crash_canary VALUES (1)")


def _crash_mid_batch(stack: Stack, after: int, restarted: list[str]) -> Crash:
    """Wait for a micro-batch later than ``after`` planned and not committed whose landing
    lock is held, stop PostgreSQL with ``-m immediate`` at once, keep it down 5 s and start
    it again. A driver that exited on an earlier crash is started again meanwhile."""
    dsn = stack.postgres.admin_dsn()
    supervised = [time.monotonic()]
    with psycopg.connect(dsn, autocommit=True) as conn:

        def landing() -> tuple[int, int] | None:
            if time.monotonic() - supervised[0] > 1.0:
                supervise(stack, restarted)
                supervised[0] = time.monotonic()
            planned, committed = checkpoint_batches(stack)
            if planned <= max(committed, after):
                return None
            holder = _landing_holder(conn)
            return (planned, holder) if holder else None

        batch, holder = wait_for("a micro-batch landed or loaded", landing, 120, interval_s=0.02)
        pid = stack.postgres.pid()
        stack.postgres.stop(mode="immediate")
    crashed = time.monotonic()
    planned, committed = checkpoint_batches(stack)  # the moment of the stop
    assert not pid_alive(pid)
    state = stack.postgres.cluster_state()
    time.sleep(5.0)  # down a few seconds: the driver's batch fails
    crash = Crash(
        batch,
        holder,
        planned,
        committed,
        state,
        # planned and not committed at the stop, and still not once the driver had had 5 s
        # to write commits/N of a load that committed just before the stop
        uncommitted=committed < batch <= planned and not commits_file(stack, batch).exists(),
    )
    stack.up(["postgres"])
    crash.down_s = time.monotonic() - crashed
    crash.canary = _count(stack, "drill_crash_canary")
    crash.landed = _count(stack, f"{LANDING}_events") + _count(stack, f"{LANDING}_quarantine")
    return crash


def test_postgres_crash_mid_batch(stack: Stack, record: Record) -> None:
    """Crash PostgreSQL (``pg_ctl stop -m immediate``) while Spark lands or loads a
    micro-batch; start it again. The load's transaction is rolled back, crash recovery empties
    the UNLOGGED landing tables, the batch is not committed in the checkpoint: the driver
    (restarted) runs it again from its checkpoint, landing it anew. A crash that lands just
    after a batch's load committed misses it: the fault is tried again on a later batch (up
    to :data:`CRASH_ATTEMPTS` crashes in the send), and the drill fails if none hit one."""
    t0, started = time.monotonic(), now()
    dsn = stack.postgres.admin_dsn()
    # long enough for CRASH_ATTEMPTS crashes, each followed by the driver's restart
    sender = Sender(stack, count=4800, seed=22, rate_per_s=40)
    sender.start()
    wait_until_acknowledged(stack, sender, 300, timeout_s=60)
    crashes: list[Crash] = []
    restarted: list[str] = []
    while len(crashes) < CRASH_ATTEMPTS and not (crashes and crashes[-1].uncommitted):
        if crashes and not sender.is_alive():
            break  # no send left to crash into: reported below
        _arm_canary(dsn)
        after = crashes[-1].batch if crashes else -1
        crashes.append(_crash_mid_batch(stack, after, restarted))
    crash = crashes[-1]
    mid_send = sender.is_alive()
    result = sender.finish(timeout_s=400)
    report = wait_quiet(stack, *window(started, now()), result.accepted_ids, restarted)
    t = tally(stack, sender.ids, result.accepted_ids)
    rerun = commits_file(stack, crash.batch).exists()
    record(
        drill_row(
            "crash PostgreSQL mid-batch (immediate stop)",
            t,
            t0,
            f"pg_ctl stop -m immediate after 300 acks while a micro-batch held the landing "
            f"lock, {len(crashes)} crash(es): "
            + "; ".join(f"{n}. {c.describe()}" for n, c in enumerate(crashes, 1))
            + f"; batch {crash.batch} "
            + ("committed after the restart" if rerun else "NOT committed")
            + restarts_note(restarted),
        )
    )
    assert crash.uncommitted, (
        f"none of {len(crashes)} crash(es) hit a micro-batch before its commit: every batch "
        "under the landing lock had its load committed when PostgreSQL stopped"
        + ("" if mid_send else " (and the send ended before another could be tried)")
    )
    assert mid_send, "the send ended during the outage: not mid-send"
    assert crash.state == "in production", f"not a crash: the cluster state is {crash.state!r}"
    assert crash.canary == 0, "the UNLOGGED canary survived: no crash recovery ran"
    assert rerun, f"batch {crash.batch} was never committed after the restart"
    assert_clean(t, report)


# --------------------------------------------------------------------------- two drivers


def _log_lines(path: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The JSON log lines of a driver's log from byte ``offset`` (Spark's own lines skipped)."""
    out = []
    with open(path, "rb") as f:
        f.seek(offset)
        for line in f.read().decode(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    return out


def _batches(lines: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(start, end) of each events batch a driver wrote (epoch seconds; the start is the end
    less the batch's own duration, its wait for the landing lock included)."""
    out = []
    for x in lines:
        if x.get("event") == BATCH_WRITTEN:
            end = datetime.fromisoformat(str(x["timestamp"]).replace("Z", "+00:00")).timestamp()
            out.append((end - float(x["seconds"]), end))
    return out


def _records_read(checkpoint: Path) -> int:
    """Records a query read from the start (its offsets begin at the earliest: 0): the end
    offsets of its newest planned batch, summed (the last line of ``offsets/N``)."""
    folder = checkpoint / "offsets"
    newest = max(int(p.name) for p in folder.iterdir() if p.name.isdigit())
    ends = json.loads((folder / str(newest)).read_text().splitlines()[-1])
    return sum(int(v) for parts in ends.values() for v in parts.values())


def _second_driver(stack: Stack, folder: Path) -> subprocess.Popen[bytes]:
    """``cinepulse-spark-jobs stream --query events --available-now`` with the streaming
    job's settings (the same PostgreSQL, so the same landing tables) but a checkpoint of its
    own (a catch-up from the earliest offsets) and no metrics port."""
    service = stack.spark_stream
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEPULSE_")}
    env |= stack.infra_env() | {"CINEPULSE_ENVIRONMENT": "development"} | service.service_env()
    env |= {"CINEPULSE_METRICS_PORT": "0", "CINEPULSE_CHECKPOINT_DIR": str(folder / "checkpoints")}
    cmd = [sys.executable, "-m", service.module, "stream", "--query", "events", "--available-now"]
    with open(folder / "driver.log", "ab") as log, open(os.devnull, "rb") as devnull:
        return subprocess.Popen(
            cmd, env=env, stdin=devnull, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def test_second_spark_driver_beside_the_stream(stack: Stack, record: Record) -> None:
    """Start ``stream --available-now`` beside the streaming job while events flow: a second
    events driver on the same landing tables. The landing lock makes one wait while the other
    lands and loads; neither empties the other's batch. The second stops by itself once its
    backlog is written (SIGTERM if not), and is killed whatever happens."""
    t0, started = time.monotonic(), now()
    stream_pid = stack.spark_stream.pid()
    stream_log = stack.spark_stream.log_path
    offset = stream_log.stat().st_size
    folder = stack.spark_stream.dir / "second-driver"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sender = Sender(stack, count=3200, seed=23, rate_per_s=40)
    sender.start()
    wait_until_acknowledged(stack, sender, 200, timeout_s=60)
    proc = _second_driver(stack, folder)
    stopped_by = "itself (its backlog written)"
    try:
        wait_for(
            "the second driver's first batch (or its exit)",
            lambda: _batches(_log_lines(folder / "driver.log")) or proc.poll() is not None,
            timeout_s=420,
            interval_s=0.5,
        )
        try:
            code = proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            stopped_by = "SIGTERM (still running after 300 s)"
            proc.send_signal(signal.SIGTERM)  # the driver stops its queries and exits 0
            code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    result = sender.finish()
    restarted: list[str] = []
    report = wait_quiet(stack, *window(started, now()), result.accepted_ids, restarted)
    t = tally(stack, sender.ids, result.accepted_ids)
    first = _log_lines(stream_log, offset)
    second = _log_lines(folder / "driver.log")
    second_batches = [x for x in second if x.get("event") == BATCH_WRITTEN]
    # batches of the two drivers under way at the same time (one waiting for the other)
    overlapping = [
        (a, b) for a in _batches(first) for b in _batches(second) if a[0] < b[1] and b[0] < a[1]
    ]
    waits = {
        "the streaming job": sum(1 for x in first if x.get("event") == LOCK_WAIT),
        "the second driver": sum(1 for x in second if x.get("event") == LOCK_WAIT),
    }
    same_stream = stack.spark_stream.pid() == stream_pid
    record(
        drill_row(
            "a second Spark events driver beside the stream",
            t,
            t0,
            "`stream --query events --available-now` (a catch-up from the earliest offsets, "
            "checkpoint of its own) started after 200 acks beside the streaming job (pid "
            f"{stream_pid}) on the same landing tables; it wrote {len(second_batches)} "
            f"batch(es) ({_records_read(folder / 'checkpoints' / 'events'):,} records read, "
            f"{sum(int(x.get('stg_user_logs', 0)) for x in second_batches):,} of them new to "
            f"staging: first wins) and stopped by {stopped_by} (exit {code}); {len(overlapping)} pair(s) of "
            "batches of the two drivers under way together; landing-lock waits logged: "
            + ", ".join(f"{who} {n}" for who, n in waits.items())
            + ("" if same_stream else f"; the streaming job restarted ({stack.spark_stream.pid()})")
            + restarts_note(restarted),
        )
    )
    assert code == 0, f"the second driver exited {code}: see {folder / 'driver.log'}"
    assert second_batches, "the second driver wrote no batch"
    assert overlapping, "no batches of the two drivers were under way together"
    assert sum(waits.values()) > 0, "neither driver waited for the landing lock"
    assert same_stream and not restarted, "the streaming job died beside the second driver"
    assert_clean(t, report)
