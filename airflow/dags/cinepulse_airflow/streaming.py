"""Streaming health, and the window the pandas fallback must cover (streaming_guard).

:func:`decide` is pure: given the signals and the time, it says whether to run the fallback
and over which arrival window. :func:`read_signals` gathers the signals:

* the Spark query's heartbeat, ``max(cinepulse_spark_last_progress_timestamp_seconds)``
  from Prometheus (it ticks when the stream is idle too, so no traffic is not an outage);
* the newest Spark fact's load time (``max(ingested_at)`` over the facts with
  ``source_flag = 'spark'``): the health signal when there is no heartbeat, and where Spark's
  coverage ends;
* where the fallback's coverage ends: the newest ``window_end`` of a succeeded or promoted
  fallback run;
* the Airflow Variable ``use_pandas_fallback`` (true forces a run, for maintenance or when
  Spark writes wrong data);
* the outage's run: the Variable :data:`OUTAGE_VARIABLE` names the fallback run of the outage
  in progress (set when a run is recorded for promotion, deleted at the first healthy check),
  and the database says whether it is still open (succeeded, not promoted) and where it ends.

One run per outage: while the outage lasts, each window **extends** the outage's run
(``cinepulse-fallback run --extend RUN_ID``) when the window starts exactly where that run
ends; a new run starts when there is none, when it was promoted meanwhile (promotion closes
it), or when Spark's coverage moved past it.

The window is on arrival time, half open, as ``cinepulse-fallback run`` takes it: from where
Spark's coverage (less a margin for its lag) or the last fallback run ended, whichever is
later, to now; at most ``max_window_s`` long. Overlap is harmless (promotion inserts only
events without a fact); a gap would lose events, so the margin errs on overlap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

FACT_TABLES = ("fact_watch", "fact_rating", "fact_comment", "fact_click")
HEARTBEAT_QUERY = "max(cinepulse_spark_last_progress_timestamp_seconds)"
TRUE_WORDS = {"1", "true", "yes", "on"}
#: the Airflow Variable naming the fallback run of the outage in progress
OUTAGE_VARIABLE = "streaming_guard_outage_run"


@dataclass(frozen=True)
class OutageRun:
    run_id: str
    status: str
    window_end: datetime


@dataclass(frozen=True)
class Signals:
    now: datetime
    forced: bool
    heartbeat_at: datetime | None  # None: no Prometheus configured, or no such series
    newest_spark_fact_at: datetime | None
    last_fallback_end: datetime | None
    outage_run: OutageRun | None = None  # the outage's run so far, if any


@dataclass(frozen=True)
class Decision:
    run_fallback: bool
    healthy: bool
    forced: bool
    reason: str
    window_start: str | None = None  # ISO 8601, UTC
    window_end: str | None = None
    extend_run_id: str | None = None  # the outage's run this window extends (None: a new run)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else (now - then).total_seconds()


def decide(s: Signals, settings: dict[str, Any]) -> Decision:
    """Whether to run the fallback, and over which arrival window ``[start, end)``."""
    heartbeat_age = _age(s.now, s.heartbeat_at)
    fact_age = _age(s.now, s.newest_spark_fact_at)
    if heartbeat_age is not None:
        healthy = heartbeat_age <= settings["heartbeat_max_age_s"]
        health = (
            f"Spark heartbeat {heartbeat_age:.0f} s old (limit {settings['heartbeat_max_age_s']} s)"
        )
    elif fact_age is not None:
        healthy = fact_age <= settings["fact_max_age_s"]
        health = f"newest Spark fact {fact_age:.0f} s old (limit {settings['fact_max_age_s']} s)"
    else:
        healthy = False
        health = "no Spark heartbeat and no Spark fact at all"
    if healthy and not s.forced:
        return Decision(False, True, False, f"healthy: {health}")

    end = s.now.astimezone(UTC).replace(microsecond=0)
    earliest = end - timedelta(seconds=settings["max_window_s"])
    starts = [earliest]
    if s.newest_spark_fact_at is not None:
        starts.append(s.newest_spark_fact_at - timedelta(seconds=settings["coverage_overlap_s"]))
    if s.last_fallback_end is not None:
        starts.append(s.last_fallback_end)
    start = max(starts).astimezone(UTC).replace(microsecond=0)
    why = "forced by the Variable use_pandas_fallback" if s.forced else f"unhealthy: {health}"
    if start >= end:
        return Decision(
            False, healthy, s.forced, f"{why}; nothing uncovered since {start.isoformat()}"
        )
    run = s.outage_run
    if run is not None and run.status == "succeeded" and run.window_end == start:
        why += f"; extending the outage's run {run.run_id}"
        return Decision(
            True, healthy, s.forced, why, start.isoformat(), end.isoformat(), run.run_id
        )
    return Decision(True, healthy, s.forced, why, start.isoformat(), end.isoformat())


def is_true(value: Any) -> bool:
    return str(value).strip().lower() in TRUE_WORDS


def heartbeat(prometheus_url: str, timeout_s: float = 10.0) -> datetime | None:
    """The Spark heartbeat from Prometheus, or None when no URL is set or no series exists.
    An unreachable Prometheus raises: the guard should not guess."""
    if not prometheus_url:
        return None
    import httpx

    answer = httpx.get(
        f"{prometheus_url.rstrip('/')}/api/v1/query",
        params={"query": HEARTBEAT_QUERY},
        timeout=timeout_s,
    )
    answer.raise_for_status()
    result = answer.json()["data"]["result"]
    if not result:
        return None
    return datetime.fromtimestamp(float(result[0]["value"][1]), UTC)


# Only the facts of the last RECENT_DAYS days by event date: the date_key index bounds the
# scan (every 5 minutes, on tables that only grow). A fact loaded now almost always has a
# recent date; if none does, Spark has been silent that long and the last fallback run's end
# (or max_window_s) bounds the window anyway.
RECENT_DAYS = 2
COVERAGE_SQL = (
    "SELECT (SELECT max(m) FROM ("
    + " UNION ALL ".join(
        f"SELECT max(ingested_at) AS m FROM {t} WHERE source_flag = 'spark'"
        f" AND date_key >= to_char(now() - interval '{RECENT_DAYS} days', 'YYYYMMDD')::integer"
        for t in FACT_TABLES
    )
    + ") AS f),"
    " (SELECT max(window_end) FROM fallback.runs"
    "  WHERE kind = 'fallback' AND status IN ('succeeded', 'promoted'))"
)


def coverage(conn: Any) -> tuple[datetime | None, datetime | None]:
    """(newest Spark fact's load time, end of the newest succeeded fallback window) through a
    DB-API connection."""
    with conn.cursor() as cur:
        cur.execute(COVERAGE_SQL)
        row = cur.fetchone()
    return row[0], row[1]


def outage_run(conn: Any, run_id: str | None) -> OutageRun | None:
    """The state of the outage's run (the Variable's value), None when unknown."""
    if not run_id:
        return None
    with conn.cursor() as cur:
        cur.execute(
            "SELECT status, window_end FROM fallback.runs WHERE run_id = %s AND kind = 'fallback'",
            (run_id,),
        )
        row = cur.fetchone()
    return None if row is None else OutageRun(run_id, row[0], row[1])


FIND_RUN_SQL = (
    "SELECT run_id, status, window_start, window_end, events_read, rows_written"
    " FROM fallback.runs WHERE requested_by = %s ORDER BY started_at DESC LIMIT 1"
)


def find_run(conn: Any, requested_by: str, run_id: str | None = None) -> dict[str, Any] | None:
    """The newest fallback run requested by ``requested_by`` (what the DAG passed as --by),
    or, given ``run_id`` (an extended run), that run."""
    with conn.cursor() as cur:
        if run_id:
            cur.execute(FIND_RUN_SQL.replace("requested_by = %s", "run_id = %s"), (run_id,))
        else:
            cur.execute(FIND_RUN_SQL, (requested_by,))
        row = cur.fetchone()
    if row is None:
        return None
    keys = ("run_id", "status", "window_start", "window_end", "events_read", "rows_written")
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in zip(keys, row, strict=True)
    }
