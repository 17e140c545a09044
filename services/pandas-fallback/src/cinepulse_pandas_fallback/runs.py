"""Fallback runs: listing them, and promoting one into the main tables.

Promotion takes one **succeeded** fallback run and, in one transaction,
:func:`cinepulse_common.warehouse.promote_run` inserts its facts into the main fact tables
(an event Spark already wrote keeps Spark's fact), the dimensions they need, and its
quarantine; the run becomes ``promoted`` and ``fallback.promotions`` records who, when, and
the rows per table. Promoting a promoted run again inserts nothing (and is recorded, with
zero rows). A dry run counts the same rows in a read-only transaction and records nothing.

:func:`pending_runs` lists the fallback runs that await promotion (succeeded, not yet
promoted), oldest first: what ``promote --all-pending`` promotes, one run per transaction
(a run promoted meanwhile is skipped), so a second call finds none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cinepulse_common.postgres import connect
from cinepulse_common.settings import PostgresSettings
from cinepulse_common.warehouse import promote_run

PROMOTABLE = ("succeeded", "promoted")


class RunNotFound(LookupError):
    pass


class NotPromotable(ValueError):
    pass


class AlreadyPromoted(NotPromotable):
    pass


@dataclass(frozen=True)
class Promotion:
    run_id: str
    promoted_by: str
    dry_run: bool
    #: table -> {"inserted": n, "present": m}; dim_movie also {"older": k}: the run's movies
    #: the main table holds a newer fetch of, left as they are
    rows: dict[str, dict[str, int]]
    promoted_at: datetime | None = None

    def table(self) -> str:
        """A readable table: per target table, rows inserted (or that would be), rows
        already present (left as they are) and, for movies, rows older than the main
        table's (skipped)."""
        verb = "would insert" if self.dry_run else "inserted"
        width = max(len(t) for t in self.rows)
        lines = [
            f"{'dry run: ' if self.dry_run else ''}promotion of {self.run_id}"
            + ("" if self.dry_run else f" by {self.promoted_by} at {self.promoted_at}"),
            f"  {'table':<{width}}  {verb:>12}  {'already present':>15}  {'older, skipped':>14}",
        ]
        lines += [
            f"  {t:<{width}}  {c['inserted']:>12,}  {c['present']:>15,}"
            + (f"  {c['older']:>14,}" if "older" in c else "")
            for t, c in self.rows.items()
        ]
        return "\n".join(lines)


def promote(
    pg: PostgresSettings,
    run_id: str,
    *,
    by: str,
    dry_run: bool = False,
    only_pending: bool = False,
) -> Promotion:
    """Promote (or, ``dry_run``, count) one fallback run; raises :class:`RunNotFound` or
    :class:`NotPromotable` (``only_pending``: :class:`AlreadyPromoted` for a promoted run,
    rather than promoting it again)."""
    with connect(pg) as conn:
        conn.read_only = dry_run  # a dry run cannot write, whatever happens
        with conn.transaction():
            row = conn.execute(
                "SELECT kind, status FROM fallback.runs WHERE run_id = %s"
                + ("" if dry_run else " FOR UPDATE"),
                (run_id,),
            ).fetchone()
            if row is None:
                raise RunNotFound(
                    f"no fallback run {run_id!r} (cinepulse-fallback runs lists them)"
                )
            kind, status = row
            if only_pending and status == "promoted":
                raise AlreadyPromoted(f"{run_id} is already promoted")
            if kind != "fallback":
                raise NotPromotable(f"{run_id} is a {kind}: it wrote into the main tables itself")
            if status not in PROMOTABLE:
                raise NotPromotable(
                    f"{run_id} is {status}; only a succeeded run can be promoted"
                    + (" (a rerun makes a new one)" if status == "failed" else "")
                )
            rows = promote_run(conn, run_id, dry_run=dry_run)
            if dry_run:
                return Promotion(run_id, by, True, rows)
            recorded = conn.execute(
                "INSERT INTO fallback.promotions (run_id, promoted_by, rows_inserted, rows_present)"
                " VALUES (%s, %s, %s, %s) RETURNING promoted_at",
                (
                    run_id,
                    by,
                    json.dumps({t: c["inserted"] for t, c in rows.items()}),
                    json.dumps({t: c["present"] for t, c in rows.items()}),
                ),
            ).fetchone()
            assert recorded is not None
            promoted_at = recorded[0]
            conn.execute(
                "UPDATE fallback.runs SET status = 'promoted' WHERE run_id = %s", (run_id,)
            )
    return Promotion(run_id, by, False, rows, promoted_at)


def pending_runs(pg: PostgresSettings) -> list[dict[str, Any]]:
    """The fallback runs awaiting promotion (succeeded), oldest window first."""
    with connect(pg) as conn:
        rows = conn.execute(
            "SELECT run_id, window_start, window_end, events_read, requested_by"
            " FROM fallback.runs WHERE kind = 'fallback' AND status = 'succeeded'"
            " ORDER BY window_start, started_at"
        ).fetchall()
    keys = ("run_id", "window_start", "window_end", "events_read", "requested_by")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def promote_pending(pg: PostgresSettings, *, by: str, dry_run: bool = True) -> list[Promotion]:
    """Promote (or, ``dry_run``, count) every run awaiting promotion, oldest first, each in a
    transaction of its own; a run promoted by someone else meanwhile is skipped."""
    done = []
    for run in pending_runs(pg):
        try:
            done.append(promote(pg, run["run_id"], by=by, dry_run=dry_run, only_pending=True))
        except AlreadyPromoted:
            continue
    return done


RUN_COLUMNS = (
    "run_id",
    "kind",
    "status",
    "window_start",
    "window_end",
    "events_read",
    "requested_by",
    "started_at",
    "finished_at",
    "error",
)


def expire_abandoned(pg: PostgresSettings, after_s: float) -> list[str]:
    """Mark failed the runs still 'running' ``after_s`` seconds after they started: their
    process died (a run writes its rows and its success in one transaction, so it left no
    rows). Returns their ids. A run that was only slow and commits later still ends as
    'succeeded' (its own final update)."""
    with connect(pg) as conn:
        rows = conn.execute(
            "UPDATE fallback.runs SET status = 'failed', finished_at = now(),"
            " error = 'abandoned: still running ' || %s::text || ' s after it started'"
            " WHERE status = 'running' AND started_at < now() - make_interval(secs => %s)"
            " RETURNING run_id",
            (int(after_s), after_s),
        ).fetchall()
    return [r[0] for r in rows]


def list_runs(pg: PostgresSettings, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first, with their promotions (who, when)."""
    with connect(pg) as conn:
        rows = conn.execute(
            f"""
            SELECT {", ".join(f"r.{c}" for c in RUN_COLUMNS)},
                   coalesce(json_agg(json_build_object('by', p.promoted_by,
                                                       'at', p.promoted_at)
                                     ORDER BY p.promoted_at)
                            FILTER (WHERE p.promotion_id IS NOT NULL), '[]')
            FROM fallback.runs AS r
            LEFT JOIN fallback.promotions AS p USING (run_id)
            GROUP BY r.run_id ORDER BY r.started_at DESC LIMIT %s
            """,
            (limit,),
        ).fetchall()
    return [dict(zip((*RUN_COLUMNS, "promotions"), r, strict=True)) for r in rows]
