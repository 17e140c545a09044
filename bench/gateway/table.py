"""The gateway benchmark's report rows: the trials of every path as one :class:`Table`, with
the ratios to the two ceilings, the CPU split, the failures and the Kafka correctness check
as notes. Kept apart from the run so the output table can be read (and changed) alone."""

from __future__ import annotations

import os
import statistics

from bench.gateway.parameters import (
    BATCH_CONCURRENCY,
    BATCH_SIZE,
    KAFKA_MESSAGES,
    PARTITIONS,
    ROUNDS,
    SINGLE_CONCURRENCY,
    STEADY_CONCURRENCY,
    STEADY_RATE,
    TARGET_BATCH,
    TARGET_P99_MS,
    TARGET_SINGLE,
    TRIAL_S,
    WARMUP_S,
)
from bench.loadgen import Trial, latency_figures, median, trial_notes
from bench.report import Figure, Table, Target


def gateway_table(
    trials: dict[str, list[Trial]], acked_events: int, topic_growth: int, gateway_log: str
) -> Table:
    """The table of every path's medians; ``acked_events`` and ``topic_growth`` are the
    gateway's 202s and its rating topic's growth over the same runs."""
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
    table.notes += trial_notes(trials, shorts)
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
