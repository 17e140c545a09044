"""A fallback run or a replay: MongoDB raw events of a window -> transform(rules) -> the shared
load step, chunk by chunk, committed whole or not at all.

* ``fallback`` (when Spark is down): written apart, into the ``fallback`` schema with
  ``source_flag = 'pandas'`` and the run's id; never merged until an admin promotes the run.
* ``replay`` (the recovery path after a bug fix): written into the main tables with
  ``source_flag = 'replay'``; what is already there stays (every key is idempotent), so a
  replay inserts what is missing and running it twice inserts nothing the second time.

Each run is a row of ``fallback.runs``, committed as ``running`` first. Every chunk is then
written inside **one** PostgreSQL transaction that ends by marking the run ``succeeded``: a
run that fails (an error, a lost connection, a kill) rolls back every row it wrote and is
marked ``failed`` (a killed one stays ``running``, with no rows), so nothing is ever
half-visible and only a succeeded run can be promoted. A replay holds its rows' locks until
it commits: give a large range in several replays (each is atomic).

A fallback run can be **extended** (``extend=RUN_ID``: one run per outage, the guard's
``--extend``): the new window, which must start at or before the run's end (no gap), is read
and written under the run's id in one transaction that also moves the run's ``window_end``,
adds its counts, and holds the run's row lock (a promotion waits for it). Only a
``succeeded`` run can be extended (a promoted one is closed: the next window is a new run);
a failed extension rolls back whole and leaves the run as it was.

An event whose copies fall in different chunks is written once: the load's event-id registry
(a fallback run's own ``fallback.stg_user_logs``, checked against the main one too; for a
replay the main one) makes a fact only of an id it registers, drops a resend and quarantines
a copy with other content (``event_id_conflict``), as it does for Spark's batches.
"""

from __future__ import annotations

import getpass
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import pandas as pd
import psycopg

from cinepulse_common.logging import get_logger
from cinepulse_common.mongo import make_client, raw_database
from cinepulse_common.postgres import connect
from cinepulse_common.rules import TransformRules
from cinepulse_common.validation import NUL, UUID_PATTERN
from cinepulse_common.warehouse import (
    QUARANTINE_COLUMNS,
    load_events,
    load_movies,
)
from cinepulse_pandas_fallback import metrics
from cinepulse_pandas_fallback.checks import full_match, split_valid, validate_events
from cinepulse_pandas_fallback.movies import MOVIES_COLLECTION, transform_movies
from cinepulse_pandas_fallback.settings import PandasFallbackSettings
from cinepulse_pandas_fallback.source import read_chunks
from cinepulse_pandas_fallback.transforms import (
    assign_event_ids,
    deduplicate_events,
    label_comments,
    model_events,
    normalise_event_types,
    normalise_events,
    parse_events,
)

log = get_logger(__name__)

Kind = Literal["fallback", "replay"]
SOURCE_FLAG: dict[str, str] = {"fallback": "pandas", "replay": "replay"}
SCHEMA: dict[str, str] = {"fallback": "fallback", "replay": "public"}


def transform_events(
    documents: pd.DataFrame, rules: TransformRules, now: datetime | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Archived documents -> (modelled events, quarantined records), the whole transform:
    the functions of Spark's ``transform_events``, by the same names, in the same order."""
    validated = validate_events(
        normalise_event_types(assign_event_ids(parse_events(documents)), rules), rules, now
    )
    valid, quarantined = split_valid(validated)
    modelled = label_comments(normalise_events(deduplicate_events(valid, rules), rules))
    return modelled, quarantined


_is_uuid = full_match(UUID_PATTERN)


def quarantine_rows(quarantined: pd.DataFrame) -> pd.DataFrame:
    """The quarantine's columns, in the load step's order (as Spark's stream writes them)."""
    return pd.DataFrame(
        {
            # only a real UUID reaches the uuid column
            "event_id": [
                e if e is not None and _is_uuid(e) else None for e in quarantined["event_id"]
            ],
            "event_type": quarantined["event_type"].tolist(),
            "source_topic": quarantined["topic"].tolist(),
            "source_partition": quarantined["partition"].tolist(),
            "source_offset": quarantined["offset"].tolist(),
            # the record as read, with any NUL escaped (PostgreSQL text cannot hold one)
            "raw": [(r or "").replace(NUL, "\\u0000") for r in quarantined["raw"]],
            "rule": [r or "invalid" for r in quarantined["quarantine_rule"]],
            "reason": quarantined["quarantine_reason"].tolist(),
        },
        columns=list(QUARANTINE_COLUMNS),
        dtype=object,
    )


def _rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    return list(frame.itertuples(index=False, name=None))


class RunFailed(RuntimeError):
    """The run failed and was recorded as failed (nothing of it is visible)."""

    def __init__(self, summary: RunSummary, cause: BaseException) -> None:
        super().__init__(f"run {summary.run_id} failed: {cause}")
        self.summary = summary


@dataclass
class RunSummary:
    run_id: str
    kind: str
    window_start: datetime
    window_end: datetime
    status: str = "running"
    events_read: int = 0
    movies_read: int = 0  # the window's movie records
    chunks: int = 0
    seconds: float = 0.0
    late: int = 0
    #: where the time went: waiting for MongoDB, transforming, writing to PostgreSQL
    read_s: float = 0.0
    transform_s: float = 0.0
    load_s: float = 0.0
    written: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "status": self.status,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "events_read": self.events_read,
            "movies_read": self.movies_read,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.events_read / self.seconds, 1) if self.seconds else None,
            "late": self.late,
            "read_s": round(self.read_s, 3),
            "transform_s": round(self.transform_s, 3),
            "load_s": round(self.load_s, 3),
            "rows": dict(sorted(self.written.items())),
            "quarantined": dict(sorted(self.quarantined.items())),
            "error": self.error,
        }


def new_run_id(kind: str, now: datetime | None = None) -> str:
    return f"{kind}-{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def _record_start(conn: psycopg.Connection[Any], s: RunSummary, by: str) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO fallback.runs (run_id, kind, window_start, window_end, status,"
            " requested_by) VALUES (%s, %s, %s, %s, 'running', %s)",
            (s.run_id, s.kind, s.window_start, s.window_end, by),
        )


def _record_end(conn: psycopg.Connection[Any], s: RunSummary) -> None:
    conn.execute(
        "UPDATE fallback.runs SET status = %s, rows_written = %s, events_read = %s,"
        " error = %s, finished_at = now() WHERE run_id = %s",
        (
            s.status,
            json.dumps({**dict(s.written), "quarantined_by_rule": dict(s.quarantined)}),
            s.events_read,
            s.error,
            s.run_id,
        ),
    )


def _progress(s: RunSummary, out: TextIO | None, started: float) -> None:
    if out is None:
        return
    took = time.monotonic() - started
    rate = s.events_read / took if took > 0 else 0.0
    facts = sum(n for t, n in s.written.items() if t.startswith("fact_"))
    print(
        f"[cinepulse-fallback] {s.run_id}: chunk {s.chunks}, {s.events_read:,} events read"
        f" ({rate:,.0f}/s), {facts:,} facts, {sum(s.quarantined.values()):,} quarantined"
        f" (read {s.read_s:.1f} s, transform {s.transform_s:.1f} s, load {s.load_s:.1f} s)",
        file=out,
        flush=True,
    )


class NotExtendable(ValueError):
    """The run to extend does not exist, is not a succeeded fallback run, or the new window
    would leave a gap after it."""


def _lock_for_extension(
    conn: psycopg.Connection[Any], run_id: str, start: datetime, end: datetime
) -> tuple[datetime, datetime, int, dict[str, Any]]:
    """Lock the run to extend (inside the caller's transaction) and check the new window;
    returns its (window_start, window_end, events_read, rows_written)."""
    row = conn.execute(
        "SELECT kind, status, window_start, window_end, events_read, rows_written"
        " FROM fallback.runs WHERE run_id = %s FOR UPDATE",
        (run_id,),
    ).fetchone()
    if row is None:
        raise NotExtendable(f"no fallback run {run_id!r} to extend")
    kind, status, w_start, w_end, events_read, rows_written = row
    if kind != "fallback" or status != "succeeded":
        raise NotExtendable(
            f"{run_id} is a {status} {kind} run; only a succeeded fallback run can be extended"
            + (" (a promoted run is closed: start a new one)" if status == "promoted" else "")
        )
    if start > w_end:
        raise NotExtendable(
            f"{run_id} ends at {w_end.isoformat()}: extending it from {start.isoformat()}"
            " would leave a gap"
        )
    if end <= w_end:
        raise NotExtendable(f"{run_id} already covers up to {w_end.isoformat()}")
    return w_start, w_end, int(events_read), dict(rows_written or {})


def _record_extension(
    conn: psycopg.Connection[Any],
    s: RunSummary,
    before: tuple[datetime, datetime, int, dict[str, Any]],
) -> None:
    w_start, _, events_read, rows_written = before
    written = Counter({k: v for k, v in rows_written.items() if isinstance(v, int)})
    written.update(s.written)
    by_rule = Counter(rows_written.get("quarantined_by_rule") or {})
    by_rule.update(s.quarantined)
    conn.execute(
        "UPDATE fallback.runs SET window_start = %s, window_end = %s, events_read = %s,"
        " rows_written = %s, finished_at = now() WHERE run_id = %s",
        (
            min(w_start, s.window_start),
            s.window_end,
            events_read + s.events_read,
            json.dumps({**dict(written), "quarantined_by_rule": dict(by_rule)}),
            s.run_id,
        ),
    )


def run_window(
    settings: PandasFallbackSettings,
    rules: TransformRules,
    start: datetime,
    end: datetime,
    *,
    kind: Kind = "fallback",
    requested_by: str | None = None,
    chunk_size: int | None = None,
    progress: TextIO | None = sys.stderr,
    extend: str | None = None,
) -> RunSummary:
    """One run over the documents that arrived in ``[start, end)``; raises
    :class:`RunFailed` (after recording the run as failed) if anything goes wrong.

    ``extend``: add the window to that succeeded fallback run instead of starting a new one
    (raises :class:`NotExtendable` before reading anything when it cannot be; a failure
    leaves the run as it was)."""
    if end <= start:
        raise ValueError(
            f"the window is empty: {start.isoformat()} is not before {end.isoformat()}"
        )
    if extend and kind != "fallback":
        raise NotExtendable("only a fallback run can be extended")
    size = chunk_size or settings.chunk_size
    schema, flag = SCHEMA[kind], SOURCE_FLAG[kind]
    summary = RunSummary(extend or new_run_id(kind), kind, start, end)
    started = time.monotonic()
    with make_client(settings.mongo) as client, connect(settings.postgres) as conn:
        collection = raw_database(client, settings.mongo)[settings.collection]
        if extend:
            with conn.transaction():  # fail early, before any read
                _lock_for_extension(conn, extend, start, end)
        else:
            _record_start(conn, summary, requested_by or getpass.getuser())
        log.info(
            "run extended" if extend else "run started",
            run_id=summary.run_id,
            kind=kind,
            start=str(start),
            end=str(end),
        )
        try:
            chunks = read_chunks(collection, start, end, size)
            with conn.transaction(), closing(chunks):
                before = _lock_for_extension(conn, extend, start, end) if extend else None
                while True:
                    waited = time.monotonic()
                    documents = next(chunks, None)
                    summary.read_s += time.monotonic() - waited
                    if documents is None:
                        break
                    _write_chunk(conn, documents, rules, summary, schema, flag)
                    _progress(summary, progress, started)
                # the movie topic: a replay straight into dim_movie, as Spark; a fallback
                # run into fallback.dim_movie, until promoted
                movies = raw_database(client, settings.mongo)[MOVIES_COLLECTION]
                _write_movies(
                    conn, read_chunks(movies, start, end, size), rules, summary, schema, flag
                )
                summary.status = "succeeded"
                summary.seconds = time.monotonic() - started
                if before is not None:
                    _record_extension(conn, summary, before)
                else:
                    _record_end(conn, summary)
        except Exception as exc:
            summary.status, summary.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
            summary.seconds = time.monotonic() - started
            try:
                if not extend:  # an extension rolled back whole: the run stays as it was
                    with conn.transaction():
                        _record_end(conn, summary)
            except psycopg.Error as record_exc:  # e.g. PostgreSQL itself went away
                log.error("run failure not recorded", run_id=summary.run_id, error=str(record_exc))
            _observe(summary)
            log.error("run failed", run_id=summary.run_id, error=summary.error)
            raise RunFailed(summary, exc) from exc
    _observe(summary)
    log.info("run succeeded", **summary.as_dict())
    return summary


def _write_chunk(
    conn: psycopg.Connection[Any],
    documents: pd.DataFrame,
    rules: TransformRules,
    summary: RunSummary,
    schema: str,
    flag: str,
) -> None:
    summary.chunks += 1
    summary.events_read += len(documents)
    t0 = time.monotonic()
    modelled, quarantined = transform_events(documents, rules)
    t1 = time.monotonic()
    summary.transform_s += t1 - t0
    run_id = summary.run_id if schema != "public" else None
    events = model_events(modelled, "is_late")
    held = quarantine_rows(quarantined)
    # the load's event-id registry (the run's own, and the main one) decides what becomes a
    # fact: a copy an earlier chunk registered is a resend (dropped) or a conflict
    written = load_events(
        conn,
        _rows(events.drop(columns="is_late")),
        _rows(held),
        source_flag=flag,
        schema=schema,
        run_id=run_id,
        dedup=rules.dedup,
    )
    summary.load_s += time.monotonic() - t1
    for key in [k for k in written if k.startswith("quarantined:")]:
        summary.quarantined[key.split(":", 1)[1]] += written.pop(key)
    summary.written.update(written)
    summary.late += int(events["is_late"].sum())
    summary.quarantined.update(held["rule"].tolist())


def _write_movies(
    conn: psycopg.Connection[Any],
    chunks: Generator[pd.DataFrame, None, None],
    rules: TransformRules,
    summary: RunSummary,
    schema: str,
    flag: str,
) -> None:
    """The window's movie records (few: TMDB's metadata), all at once so the newest fetch
    of each movie wins across the window, through Spark's movie transforms
    (:mod:`cinepulse_pandas_fallback.movies`) into ``dim_movie`` and its bridges (SCD type 1,
    the shared load step) and the quarantine; a fallback run's into the ``fallback`` schema
    under its run id (an extension's version of a movie replaces the run's earlier one, unless
    it was fetched earlier)."""
    with closing(chunks):
        frames = list(chunks)
    if not frames:
        return
    documents = pd.concat(frames, ignore_index=True)
    summary.movies_read += len(documents)
    rows, quarantined = transform_movies(documents, rules)
    held = quarantine_rows(quarantined.assign(event_id=None, event_type=None))
    run_id = summary.run_id if schema != "public" else None
    summary.written.update(
        load_movies(conn, _rows(rows), source_flag=flag, schema=schema, run_id=run_id)
    )
    written = load_events(conn, (), _rows(held), source_flag=flag, schema=schema, run_id=run_id)
    summary.written.update(written)
    summary.quarantined.update(held["rule"].tolist())


def _observe(s: RunSummary) -> None:
    metrics.EVENTS_READ.inc(s.events_read)
    metrics.DURATION.set(s.seconds)
    metrics.LAST_STATUS.set(1 if s.status == "succeeded" else 0)
    if s.status == "succeeded":
        for table, n in s.written.items():
            metrics.ROWS.labels(table).inc(n)
        for rule, n in s.quarantined.items():
            metrics.QUARANTINED.labels(rule).inc(n)
        metrics.LATE.inc(s.late)
        metrics.LAST_SUCCESS.set(time.time())
