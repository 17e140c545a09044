"""The fault drills (issue 11): each sends events through the real gateway at a steady rate,
injects one fault in the middle, recovers, waits until the pipeline is quiet and counts
sent, acknowledged, stored, lost and duplicated. In every drill: acknowledged-but-lost = 0
and duplicate facts = 0, and the fault demonstrably happened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymongo.errors import PyMongoError

from cinepulse_devstack import Stack
from cinepulse_devstack.procs import pid_alive
from tests.drills import guard
from tests.drills.harness import (
    Record,
    Sender,
    assert_clean,
    checkpoint_batches,
    commits_file,
    drill_row,
    fact_flags,
    fact_rows,
    fact_totals,
    gateway_metrics,
    now,
    offsets_file,
    raw_documents,
    reconcile,
    restarts_note,
    staged,
    supervise,
    tally,
    wait_for,
    wait_quiet,
    wait_until_acknowledged,
    window,
)

# the first drill also pays for the private stack's start and warm-up (2-5 min on 2 cores)
pytestmark = [pytest.mark.drill, pytest.mark.timeout(900)]


def _metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )


def test_archiver_sigkill(stack: Stack, record: Record) -> None:
    """SIGKILL the archiver mid-stream; restart it. Records it had read but not committed are
    read again: MongoDB keeps one document per Kafka position."""
    t0, started = time.monotonic(), now()
    sender = Sender(stack, count=1500, seed=11, rate_per_s=50)
    sender.start()
    wait_until_acknowledged(stack, sender, 300, timeout_s=60)
    old = stack.archiver.kill()
    assert not pid_alive(old)
    # down while events keep arriving (they wait in Kafka), as a restarting pod would be
    wait_until_acknowledged(stack, sender, 150, timeout_s=60)
    stack.up(["archiver"])
    new = stack.archiver.pid()
    assert new is not None and new != old and stack.archiver.alive()
    result = sender.finish()
    restarted: list[str] = []
    report = wait_quiet(stack, *window(started, now()), result.accepted_ids, restarted)
    duplicates = _metric(stack.archiver.metrics_url, "cinepulse_archiver_duplicates_total")
    t = tally(stack, sender.ids, result.accepted_ids)
    record(
        drill_row(
            "SIGKILL the archiver",
            t,
            t0,
            f"archiver pid {old} killed after 300 acks, restarted as {new}; "
            f"{duplicates:.0f} records read again and skipped as already stored"
            + restarts_note(restarted),
        )
    )
    assert_clean(t, report)


def test_kafka_sigkill_during_ingest(stack: Stack, record: Record) -> None:
    """SIGKILL the Kafka broker while the gateway is taking events; restart it. The gateway
    answers 503 for what Kafka cannot acknowledge; what it acknowledged was written by the
    broker before it answered (``acks=all``) and survives the crash."""
    t0, started = time.monotonic(), now()
    before = gateway_metrics(stack)
    archiver_pid = stack.archiver.pid()
    refilled = _metric(stack.archiver.metrics_url, "cinepulse_archiver_gap_records_total")
    sender = Sender(stack, count=2000, seed=12, rate_per_s=50)
    sender.start()
    wait_until_acknowledged(stack, sender, 300, timeout_s=60)
    old = stack.kafka.kill()
    killed = time.monotonic()
    assert not pid_alive(old)
    # down until the gateway has had to refuse events (its produce deadline is 5 s)
    wait_for(
        "the gateway refusing events for lack of Kafka",
        lambda: gateway_metrics(stack)["kafka_unavailable"] > before["kafka_unavailable"],
        timeout_s=60,
    )
    stack.up(["kafka"])
    down_s = time.monotonic() - killed
    new = stack.kafka.pid()
    assert new is not None and new != old and stack.kafka.alive()
    restarted: list[str] = []
    supervise(stack, restarted)
    result = sender.finish()
    after = gateway_metrics(stack)
    report = wait_quiet(stack, *window(started, now()), result.accepted_ids, restarted)
    t = tally(stack, sender.ids, result.accepted_ids)
    if stack.archiver.pid() == archiver_pid:
        refilled = (
            _metric(stack.archiver.metrics_url, "cinepulse_archiver_gap_records_total") - refilled
        )
    else:  # restarted: its counter started again at 0
        refilled = _metric(stack.archiver.metrics_url, "cinepulse_archiver_gap_records_total")
    record(
        drill_row(
            "SIGKILL Kafka during ingest",
            t,
            t0,
            f"broker pid {old} killed after 300 acks, down {down_s:.0f} s, restarted as {new}; "
            f"{result.unavailable} events answered 503 (not acknowledged; "
            f"{t.unacknowledged_stored} of them landed anyway), "
            f"{after['kafka_errors'] - before['kafka_errors']:.0f} Kafka client errors in the "
            f"gateway; the archiver's consumer skipped {refilled:.0f} records across its "
            "rebalance and read them again from Kafka" + restarts_note(restarted),
        )
    )
    assert result.unavailable > 0, "no event was refused: Kafka's outage did not show"
    assert after["kafka_errors"] > before["kafka_errors"]
    assert_clean(t, report)


def test_spark_driver_sigkill_mid_batch(stack: Stack, record: Record) -> None:
    """SIGKILL the Spark driver (its Python process and its JVM: the pod) while a micro-batch
    is running; restart it. The batch was planned in the checkpoint and not committed: the
    new driver runs it again with the same offsets, and the load's idempotent keys write
    nothing twice."""
    t0, started = time.monotonic(), now()
    sender = Sender(stack, count=2500, seed=13, rate_per_s=50)
    sender.start()
    wait_until_acknowledged(stack, sender, 300, timeout_s=60)

    def batch_just_started() -> tuple[int] | None:
        planned, committed = checkpoint_batches(stack)
        if planned <= committed:
            return None
        age = time.time() - offsets_file(stack, planned).stat().st_mtime
        return (planned,) if age < 0.3 else None

    (batch,) = wait_for("a micro-batch just started", batch_just_started, 90, interval_s=0.02)
    old = stack.spark_stream.kill()
    planned, committed = checkpoint_batches(stack)
    assert not pid_alive(old)
    assert (planned, committed) == (batch, batch - 1), (
        f"not killed mid-batch: planned {planned}, committed {committed}"
    )
    offsets = offsets_file(stack, batch).read_text()
    stack.up(["spark-stream"])
    new = stack.spark_stream.pid()
    assert new is not None and new != old
    result = sender.finish()
    restarted: list[str] = []
    report = wait_quiet(stack, *window(started, now()), result.accepted_ids, restarted)
    t = tally(stack, sender.ids, result.accepted_ids)
    rerun = commits_file(stack, batch).exists()
    same_offsets = offsets_file(stack, batch).read_text() == offsets
    record(
        drill_row(
            "SIGKILL the Spark driver mid-batch",
            t,
            t0,
            f"driver pid {old} (and its JVM) killed in micro-batch {batch} (planned, not "
            f"committed), restarted as {new}; batch {batch} "
            + (
                "re-run from the checkpoint with the same offsets"
                if rerun and same_offsets
                else "NOT re-run from the checkpoint"
            )
            + restarts_note(restarted),
        )
    )
    assert rerun and same_offsets, "the restarted driver did not resume from its checkpoint"
    assert_clean(t, report)


def test_postgres_stopped_for_30_seconds(stack: Stack, record: Record) -> None:
    """Stop PostgreSQL for 30 s while events flow; start it again. Spark cannot write its
    micro-batch; nothing it read is committed in its checkpoint until it is written."""
    t0, started = time.monotonic(), now()
    sender = Sender(stack, count=3200, seed=14, rate_per_s=40)
    sender.start()
    wait_until_acknowledged(stack, sender, 300, timeout_s=60)
    pid = stack.postgres.pid()
    stack.postgres.stop()
    stopped = time.monotonic()
    assert not pid_alive(pid)
    # the outage itself: 30 s in which every connection attempt is refused
    refused = 0
    while time.monotonic() - stopped < 30:
        try:
            stack.postgres.probe()
        except psycopg.OperationalError:
            refused += 1
        else:
            raise AssertionError("PostgreSQL answered while it was stopped")
        time.sleep(1.0)
    stack.up(["postgres"])
    down_s = time.monotonic() - stopped
    assert sender.is_alive(), "the send ended during the outage: not mid-send"
    restarted: list[str] = []
    result = sender.finish()
    report = wait_quiet(stack, *window(started, now()), result.accepted_ids, restarted)
    t = tally(stack, sender.ids, result.accepted_ids)
    record(
        drill_row(
            "stop PostgreSQL for 30 s",
            t,
            t0,
            f"pg_ctl stop (fast) after 300 acks; {refused} connection attempts refused over "
            f"{down_s:.0f} s, then started again (pid {stack.postgres.pid()})"
            + restarts_note(restarted),
        )
    )
    assert down_s >= 30 and refused >= 25
    assert_clean(t, report)


#: the ``cinepulse_config`` Variable of the drill's guard: this stack's Prometheus, and
#: health limits of 30 s instead of 300 s / 900 s (a deployment setting; the decision's
#: logic and the window's margins are the defaults)
GUARD = {
    "prometheus_url": "",
    "streaming": {"heartbeat_max_age_s": 30, "fact_max_age_s": 30},
}


def _cli(stack: Stack, *args: str) -> dict[str, Any]:
    """``cinepulse-fallback ...`` against the private stack; its JSON line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEPULSE_")}
    env |= stack.infra_env() | {"CINEPULSE_LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-m", "cinepulse_pandas_fallback", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (
        f"cinepulse-fallback {args[0]}: exit {done.returncode}\n{done.stderr}"
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_spark_unavailable_guard_runs_the_fallback_then_promotion(
    stack: Stack, record: Record
) -> None:
    """Spark is stopped; events keep coming and are archived. streaming_guard's decision
    turns to the fallback for the uncovered window, ``cinepulse-fallback run`` writes it
    apart (the main facts do not change), ``promote`` merges it. Spark, started again,
    reads the same records from its checkpoint and writes no second fact."""
    t0 = time.monotonic()
    variable = GUARD | {"prometheus_url": stack.prometheus.url}
    healthy = wait_for(
        "the guard to see Spark's heartbeat",
        lambda: (d := guard.decision(stack, variable)).healthy and not d.run_fallback and d,
        timeout_s=90,
        interval_s=2,
    )
    assert "heartbeat" in healthy.reason

    stack.down(["spark-stream"])
    assert not stack.spark_stream.alive()
    spark_facts = fact_totals(stack)
    started = now()
    sender = Sender(stack, count=800, seed=15, rate_per_s=40)
    sender.start()
    result = sender.finish()
    acked = result.accepted_ids
    assert result.accepted == len(sender.ids)
    wait_for(
        "the outage's events in MongoDB",
        lambda: sum(1 for n in raw_documents(stack, acked).values() if n) == len(acked),
        timeout_s=120,
    )
    # the guard's window ends at its "now" floored to the second ([start, end)): a record
    # archived in the very second of the decision falls to the next run (the guard extends
    # it), so the decision is asked for once that second is over
    time.sleep(2.0)
    assert not fact_rows(stack, acked), "facts appeared while Spark was stopped"

    decision = wait_for(
        "the guard to decide on the fallback",
        lambda: (d := guard.decision(stack, variable)).run_fallback and d,
        timeout_s=120,
        interval_s=2,
    )
    assert not decision.healthy and not decision.forced
    run = _cli(
        stack,
        "run",
        "--from",
        decision.window_start,
        "--to",
        decision.window_end,
        "--by",
        "drills/streaming_guard",
    )
    assert run["status"] == "succeeded"
    with psycopg.connect(stack.postgres.admin_dsn()) as conn:
        apart = {
            r[0]
            for t in ("fact_watch", "fact_rating", "fact_comment", "fact_click")
            for r in conn.execute(
                f"SELECT event_id::text FROM fallback.{t} WHERE run_id = %s", (run["run_id"],)
            )
        }
    assert set(acked) <= apart, f"{len(set(acked) - apart)} outage events not in the run"
    assert fact_totals(stack) == spark_facts, "the fallback run changed the main facts"
    assert not fact_rows(stack, acked)

    promoted = _cli(stack, "promote", run["run_id"], "--by", "drills")
    inserted = {t: c["inserted"] for t, c in promoted["rows"].items() if t.startswith("fact_")}
    t = tally(stack, sender.ids, acked)
    flags = fact_flags(stack, acked)
    after_promotion = fact_totals(stack)
    # promotion registers the records in staging (the event-id registry): the
    # reconciliation accounts for them as staged, with their facts
    registered = staged(stack, acked)
    promoted_view = reconcile(stack, *window(started, now()), acked)

    _, committed_before = checkpoint_batches(stack)
    stack.up(["spark-stream"])  # resumes from its checkpoint: the outage's records again
    wait_for(
        "Spark to commit a micro-batch from its checkpoint (the outage's records again)",
        lambda: checkpoint_batches(stack)[1] > committed_before,
        timeout_s=300,
        interval_s=2,
    )
    restarted: list[str] = []
    report = wait_quiet(stack, *window(started, now()), acked, restarted)
    t_after = tally(stack, sender.ids, acked)
    flags_after = fact_flags(stack, acked)
    record(
        drill_row(
            "Spark unavailable: guard, pandas fallback, promotion",
            t,
            t0,
            f"spark-stream stopped; guard: {decision.reason}; run {run['run_id']} over "
            f"{decision.window_start} .. {decision.window_end} ({run['events_read']:,} "
            f"archived events read), main facts unchanged until promoted; promotion inserted "
            f"{sum(inserted.values()):,} facts and registered {len(registered):,} ids in staging "
            f"(reconciliation: drift {str(promoted_view.drift).lower()}); Spark restarted from "
            f"its checkpoint and committed batch {checkpoint_batches(stack)[1]} over the "
            f"outage's records again: duplicate facts {t_after.duplicate_facts}, "
            f"{flags_after.get('pandas', 0):,} still source_flag=pandas" + restarts_note(restarted),
        )
    )
    assert flags == {"pandas": len(acked)}, flags
    assert sum(inserted.values()) == len(acked)  # the window's other events had their facts
    assert not promoted_view.drift, promoted_view.differences
    assert registered == set(acked), f"{len(set(acked) - registered)} promoted ids not staged"
    assert promoted_view.differences["promoted"] == 0  # staged now, not told apart
    assert sum(inserted.values()) == sum(after_promotion.values()) - sum(spark_facts.values())
    assert_clean(t, report)
    # Spark's late copies of the promoted events: no second fact, the promoted ones stay
    assert t_after.lost == 0 and t_after.duplicated == 0
    assert flags_after == flags
    assert fact_totals(stack) == after_promotion


def test_mongo_stopped_for_60_seconds(stack: Stack, record: Record) -> None:
    """Stop the MongoDB-protocol server for 60 s while events flow; start it again. The
    archiver cannot write: it retries with backoff and holds the batch (no offset committed,
    the lag grows), dead-letters nothing, and catches up once the server is back."""
    t0, started = time.monotonic(), now()
    url, pid_before = stack.archiver.metrics_url, stack.archiver.pid()

    def archiver(name: str) -> float:
        return _metric(url, f"cinepulse_archiver_{name}")

    before = {n: archiver(n) for n in ("mongo_retries_total", "dead_lettered_total")}
    sender = Sender(stack, count=4000, seed=16, rate_per_s=40)
    sender.start()
    wait_until_acknowledged(stack, sender, 300, timeout_s=60)
    pid = stack.mongo.pid()
    stack.mongo.stop()
    stopped = time.monotonic()
    assert not pid_alive(pid)
    refused, written_at_10s = 0, None
    while time.monotonic() - stopped < 60:
        try:
            stack.mongo.probe()
        except PyMongoError:
            refused += 1
        else:
            raise AssertionError("the MongoDB server answered while it was stopped")
        if written_at_10s is None and time.monotonic() - stopped >= 10:
            written_at_10s = archiver("written_total")
        time.sleep(1.0)
    stalled = archiver("written_total") == written_at_10s
    retried = archiver("mongo_retries_total") - before["mongo_retries_total"]
    lag = archiver("consumer_lag")
    stack.up(["mongo"])
    down_s = time.monotonic() - stopped
    assert sender.is_alive(), "the send ended during the outage: not mid-send"
    restarted: list[str] = []
    result = sender.finish()
    report = wait_quiet(stack, *window(started, now()), result.accepted_ids, restarted)
    t = tally(stack, sender.ids, result.accepted_ids)
    same = stack.archiver.pid() == pid_before
    dead = archiver("dead_lettered_total") - (before["dead_lettered_total"] if same else 0)
    released = archiver("batches_released_total")
    record(
        drill_row(
            "stop MongoDB for 60 s",
            t,
            t0,
            f"FerretDB pid {pid} stopped after 300 acks; {refused} pings refused over "
            f"{down_s:.0f} s, then started again (pid {stack.mongo.pid()}); the archiver "
            f"retried its MongoDB operations {retried:.0f} times, wrote nothing from 10 s into "
            f"the outage to its end ({'stalled' if stalled else 'NOT stalled'}, lag {lag:.0f} "
            f"records), gave back {released:.0f} batches, dead-lettered {dead:.0f}"
            + ("" if same else f"; archiver restarted (pid {stack.archiver.pid()})")
            + restarts_note(restarted),
        )
    )
    assert down_s >= 60 and refused >= 10
    assert retried > 0, "the archiver never failed a write: the outage did not show"
    assert stalled and lag > 0, "the archiver did not stall while MongoDB was down"
    assert same and not restarted, "the archiver exited instead of waiting for MongoDB"
    assert dead == 0, f"{dead:.0f} valid records dead-lettered"
    assert_clean(t, report)
