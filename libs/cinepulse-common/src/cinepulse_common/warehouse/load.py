"""Loading modelled events and quarantined rows (see :mod:`cinepulse_common.warehouse`):
COPY into temporary tables, then idempotent inserts into staging, facts, quarantine and the
dimensions; Spark's landing tables; which events a chunked job already wrote."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from cinepulse_common.rules import DedupRule
from cinepulse_common.warehouse import registry
from cinepulse_common.warehouse.columns import (
    EVENT_COLUMN_TYPES,
    FACT_BASE,
    FACT_EXTRA,
    FACT_TABLE,
    QUARANTINE_COLUMN_TYPES,
    QUARANTINE_COLUMNS,
)


def _ids(names: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, names))


def _copy_into_temp(
    cur: psycopg.Cursor[Any],
    name: str,
    column_types: Sequence[tuple[str, str]],
    rows: Iterable[Sequence[Any]],
) -> int:
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
            sql.Identifier(name),
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in column_types
            ),
        )
    )
    n = 0
    with cur.copy(
        sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(name), _ids(c for c, _ in column_types)
        )
    ) as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def _upsert_dims(
    cur: psycopg.Cursor[Any], events: sql.Composable, flag: sql.Composable
) -> dict[str, int]:
    """Dimensions "as they appear" for ``events`` (a relation with ``date_key``, ``user_id``
    and ``occurred_at``): new ``dim_date`` rows, ``dim_user`` first/last seen widened."""
    cur.execute(
        sql.SQL("""
        INSERT INTO dim_date
        SELECT date_key, d, extract(year FROM d), extract(quarter FROM d),
               extract(month FROM d), extract(day FROM d), extract(week FROM d),
               extract(isodow FROM d), extract(isodow FROM d) IN (6, 7)
        FROM (SELECT DISTINCT date_key, to_date(date_key::text, 'YYYYMMDD') AS d
              FROM {events} AS e) AS dates
        ON CONFLICT (date_key) DO NOTHING
        """).format(events=events)
    )
    written = {"dim_date": cur.rowcount}
    # sorted: concurrent writers take the row locks in one order (no deadlock)
    cur.execute(
        sql.SQL("""
        INSERT INTO dim_user (user_id, first_seen_at, last_seen_at, source_flag)
        SELECT user_id, min(occurred_at), max(occurred_at), {flag}
        FROM {events} AS e GROUP BY user_id ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE
        SET first_seen_at = LEAST(dim_user.first_seen_at, EXCLUDED.first_seen_at),
            last_seen_at = GREATEST(dim_user.last_seen_at, EXCLUDED.last_seen_at)
        WHERE EXCLUDED.first_seen_at < dim_user.first_seen_at
           OR EXCLUDED.last_seen_at > dim_user.last_seen_at
        """).format(flag=flag, events=events)
    )
    written["dim_user"] = cur.rowcount
    return written


def load_events(
    conn: psycopg.Connection[Any],
    events: Iterable[Sequence[Any]],
    quarantined: Iterable[Sequence[Any]] = (),
    *,
    source_flag: str,
    schema: str = "public",
    run_id: str | None = None,
    dedup: DedupRule | None = None,
) -> dict[str, int]:
    """Write one batch inside the caller's transaction; returns the rows *inserted* per
    table (a replay inserts 0) and ``quarantined:event_id_conflict``, the copies found in
    conflict with the event-id registry (:mod:`.registry`; ``dedup``: the engine's rules,
    else the active ones). ``events`` in :data:`EVENT_COLUMNS` order, ``quarantined`` in
    :data:`QUARANTINE_COLUMNS` order."""
    with conn.cursor() as cur:
        offered = _copy_into_temp(cur, "_batch_events", EVENT_COLUMN_TYPES, events)
        held = _copy_into_temp(cur, "_batch_quarantine", QUARANTINE_COLUMN_TYPES, quarantined)
        written = _load_from(
            cur,
            sql.Identifier("_batch_events") if offered else None,
            sql.Identifier("_batch_quarantine") if held else None,
            source_flag=source_flag,
            schema=schema,
            run_id=run_id,
            dedup=dedup,
        )
        cur.execute("DROP TABLE _batch_events, _batch_quarantine")
    return written


def batch_tables(name: str) -> tuple[str, str]:
    """The two landing tables of an engine that writes a batch itself (Spark, over JDBC)
    before :func:`load_events_from_tables` moves it: ``<name>_events`` (the
    :data:`EVENT_COLUMNS` plus ``is_late``) and ``<name>_quarantine``."""
    return f"{name}_events", f"{name}_quarantine"


def ensure_batch_tables(conn: psycopg.Connection[Any], name: str) -> tuple[str, str]:
    """Create the landing tables (UNLOGGED: a crash loses only a batch that is replayed
    anyway) if missing; returns their names. Migration 0012 creates Spark's: its role may
    not CREATE, and PostgreSQL checks that even for ``CREATE ... IF NOT EXISTS``, so an
    existing table is not created again."""
    events, quarantine = batch_tables(name)
    for table, column_types in (
        (events, (*EVENT_COLUMN_TYPES, ("is_late", "boolean"))),
        (quarantine, QUARANTINE_COLUMN_TYPES),
    ):
        exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if exists is not None and exists[0] is not None:
            continue
        conn.execute(
            sql.SQL("CREATE UNLOGGED TABLE IF NOT EXISTS {} ({})").format(
                sql.Identifier(table),
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in column_types
                ),
            )
        )
    return events, quarantine


def load_events_from_tables(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    source_flag: str,
    schema: str = "public",
    run_id: str | None = None,
    dedup: DedupRule | None = None,
) -> dict[str, int]:
    """:func:`load_events` from the landing tables of :func:`ensure_batch_tables`, inside
    the caller's transaction; adds ``late`` (landed events flagged late) and
    ``quarantined:<rule>`` counts to the result."""
    events, quarantine = batch_tables(name)
    with conn.cursor() as cur:
        written = _load_from(
            cur,
            sql.Identifier(events),
            sql.Identifier(quarantine),
            source_flag=source_flag,
            schema=schema,
            run_id=run_id,
            dedup=dedup,
        )
        cur.execute(
            sql.SQL("SELECT count(*) FILTER (WHERE is_late) FROM {}").format(sql.Identifier(events))
        )
        written["late"] = int(cur.fetchone()[0])  # type: ignore[index]
        cur.execute(
            sql.SQL("SELECT rule, count(*) FROM {} GROUP BY rule").format(
                sql.Identifier(quarantine)
            )
        )
        for rule, n in cur.fetchall():
            written[f"quarantined:{rule}"] = int(n)
    return written


def _load_from(
    cur: psycopg.Cursor[Any],
    events: sql.Composable | None,
    quarantine: sql.Composable | None,
    *,
    source_flag: str,
    schema: str,
    run_id: str | None,
    dedup: DedupRule | None = None,
) -> dict[str, int]:
    apart = schema != "public"
    if apart and run_id is None:
        raise ValueError("a run_id is needed to write outside the public schema")
    written: dict[str, int] = {}
    flag = sql.Literal(source_flag)
    extra = [sql.Literal(run_id)] if apart else []
    extra_cols = [sql.Identifier("run_id")] if apart else []
    if events is not None:
        # the registry is the gate: a fact only for an id staged by this load; the other
        # copies are resends (dropped) or conflicts (quarantined) (see .registry)
        events, counts = registry.register(
            cur, events, flag=flag, schema=schema, run_id=run_id, dedup=dedup
        )
        written |= counts
    if events is not None and not apart:
        written |= _upsert_dims(cur, events, flag)
        cur.execute(
            sql.SQL("""
            INSERT INTO stg_comments (event_id, user_id, movie_id, occurred_at,
                                      comment_text, source_flag)
            SELECT event_id, user_id, movie_id, occurred_at, comment_text, {flag}
            FROM {events} AS e WHERE event_type = 'comment'
            ON CONFLICT (event_id) DO NOTHING
            """).format(flag=flag, events=events)
        )
        written["stg_comments"] = cur.rowcount
    for event_type, table in FACT_TABLE.items():
        if events is None:
            break
        cols = [*FACT_BASE, *FACT_EXTRA[event_type]]
        cur.execute(
            sql.SQL("""
            INSERT INTO {table} ({cols}, source_flag{extra_cols})
            SELECT {cols}, {flag}{extra} FROM {events} AS e WHERE event_type = {etype}
            ON CONFLICT DO NOTHING
            """).format(
                table=sql.Identifier(schema, table),
                cols=_ids(cols),
                flag=flag,
                extra_cols=sql.SQL("").join(sql.SQL(", ") + c for c in extra_cols),
                extra=sql.SQL("").join(sql.SQL(", ") + v for v in extra),
                etype=sql.Literal(event_type),
                events=events,
            )
        )
        written[table] = cur.rowcount
    if quarantine is not None:
        cur.execute(
            sql.SQL("""
            INSERT INTO {table} ({cols}, source_flag{extra_cols})
            SELECT {cols}, {flag}{extra} FROM {quarantine} AS q
            ON CONFLICT DO NOTHING
            """).format(
                table=sql.Identifier(schema, "quarantine"),
                quarantine=quarantine,
                cols=_ids(QUARANTINE_COLUMNS),
                flag=flag,
                extra_cols=sql.SQL("").join(sql.SQL(", ") + c for c in extra_cols),
                extra=sql.SQL("").join(sql.SQL(", ") + v for v in extra),
            )
        )
        written["quarantine"] = cur.rowcount
    if events is not None:
        written["quarantine"] = written.get("quarantine", 0) + registry.quarantine_conflicts(
            cur, flag=flag, schema=schema, run_id=run_id
        )
        registry.drop(cur)
    return written
