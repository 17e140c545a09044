"""The event-id registry: one ``event_id`` is one event, whatever its type.

Staging (``stg_user_logs``; a fallback run's own ``fallback.stg_user_logs``) is the
registry: the load stages a batch's events first (``ON CONFLICT DO NOTHING``) and writes a
fact only for an id it staged *now*. Every other copy of an id is compared with what the
registry holds, on the rules' ``dedup.compare`` fields (``received_at`` is never among them:
the gateway sets it on every send):

* equal: a resend (a client's retry, a redelivery, a replay): dropped silently;
* different (another type, user, movie, time, session or payload): quarantined with the rule
  :data:`~cinepulse_common.validation.EVENT_ID_CONFLICT` and a reason naming the fields that
  differ and what the registry holds. Counted and visible, never a second fact.

Within one batch the copies of an id are ranked by source position (topic, partition,
offset; ``dedup.keep``: first or last), as the engines' dedup and the fallback's reading
order do, so Spark and the fallback pick the same copy whatever the chunk size: the first is
offered to the registry, the others are compared with whatever it holds afterwards. Across
batches the registry is first come, first served. A registry row whose ``payload`` is NULL (registered by migration 0011 from a
fact promoted before the registry existed: its payload was never kept) is compared on the
other fields only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from cinepulse_common.rules import DedupRule, active_rules
from cinepulse_common.validation import EVENT_ID_CONFLICT, EVENT_ID_CONFLICT_REASON

#: the registry's columns an engine hands over (staging minus its own bookkeeping)
STAGED: tuple[str, ...] = (
    "event_id",
    "event_type",
    "user_id",
    "movie_id",
    "occurred_at",
    "received_at",
    "session_id",
    "payload",
    "source_topic",
    "source_partition",
    "source_offset",
)
#: the batch's rows ranked per id (``_n = 1``: the copy offered to the registry)
OFFERED = "_registry_offered"
#: the ids this load registered (their ``_n = 1`` row becomes a fact)
NEW = "_registry_new"
#: the copies found in conflict with the registry
CONFLICTS = "_registry_conflicts"


def dedup_rule(dedup: DedupRule | None) -> DedupRule:
    return dedup if dedup is not None else active_rules().dedup


def differences(
    offered: str, registered: str, compare: Sequence[str] | None = None
) -> sql.Composable:
    """A ``text[]`` of the ``compare`` fields in which ``offered`` differs from
    ``registered`` (two relation aliases); empty when the copy is a resend."""
    fields = compare if compare is not None else dedup_rule(None).compare
    o, r = sql.Identifier(offered), sql.Identifier(registered)
    cases = []
    for name in fields:
        f = sql.Identifier(name)
        differs = sql.SQL("{o}.{f} IS DISTINCT FROM {r}.{f}").format(o=o, r=r, f=f)
        if name == "payload":  # a NULL payload is unknown (registered from a fact)
            differs = sql.SQL("{o}.{f} IS NOT NULL AND {r}.{f} IS NOT NULL AND {d}").format(
                o=o, r=r, f=f, d=differs
            )
        cases.append(sql.SQL("CASE WHEN {} THEN {} END").format(differs, sql.Literal(name)))
    return sql.SQL("array_remove(ARRAY[{}]::text[], NULL)").format(sql.SQL(", ").join(cases))


def conflict_reason(diff: sql.Composable, registered: str) -> sql.Composable:
    r = sql.Identifier(registered)
    return sql.SQL(
        "{prefix} || array_to_string({diff}, ', ') || ' (registered as ' || {r}.event_type"
        " || ' by ' || {r}.source_flag || ')'"
    ).format(prefix=sql.Literal(EVENT_ID_CONFLICT_REASON), diff=diff, r=r)


def raw_of(alias: str) -> sql.Composable:
    """The quarantine's ``raw`` of a conflicting copy: its staged fields as JSON (the record
    as received stays in MongoDB, at the same source position)."""
    a = sql.Identifier(alias)
    return sql.SQL("jsonb_build_object({})::text").format(
        sql.SQL(", ").join(
            sql.SQL("{}, {}.{}").format(sql.Literal(c), a, sql.Identifier(c)) for c in STAGED[:8]
        )
    )


def _registered(schema: str, run_id: str | None) -> sql.Composable:
    """The registry row of ``o.event_id`` (``o``: the offered copy): the main registry's;
    for a fallback run, the main one first, else the run's own."""
    cols = sql.SQL(", ").join(map(sql.Identifier, (*STAGED, "source_flag")))
    main = sql.SQL(
        "SELECT 1 AS _p, {cols} FROM public.stg_user_logs AS s WHERE s.event_id = o.event_id"
    )
    if schema == "public":
        return sql.SQL("({})").format(main.format(cols=cols))
    return sql.SQL(
        "(SELECT * FROM ({main} UNION ALL SELECT 2, {cols} FROM fallback.stg_user_logs AS s"
        " WHERE s.run_id = {run} AND s.event_id = o.event_id) AS u ORDER BY _p LIMIT 1)"
    ).format(main=main.format(cols=cols), cols=cols, run=sql.Literal(run_id))


def register(
    cur: psycopg.Cursor[Any],
    events: sql.Composable,
    *,
    flag: sql.Composable,
    schema: str,
    run_id: str | None,
    dedup: DedupRule | None = None,
) -> tuple[sql.Composable, dict[str, int]]:
    """Rank ``events`` per id, stage the first copy of each id the registry does not hold
    yet (a fallback run: nor the main registry with other content), and find the copies in
    conflict. Returns the relation of the newly registered events (one row per id: what
    becomes a fact) and the counts; :func:`quarantine_conflicts` then writes the conflicts,
    :func:`drop` the work tables."""
    rule = dedup_rule(dedup)
    direction = sql.SQL("DESC" if rule.keep == "last" else "ASC")
    apart = schema != "public"
    cur.execute(
        sql.SQL("""
        CREATE TEMP TABLE {offered} ON COMMIT DROP AS
        SELECT e.*, row_number() OVER (
            PARTITION BY e.event_id
            ORDER BY e.source_topic {d}, e.source_partition {d}, e.source_offset {d},
                     e.event_type, e.payload::text) AS _n
        FROM {events} AS e
        """).format(offered=sql.Identifier(OFFERED), d=direction, events=events)
    )
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} (event_id uuid PRIMARY KEY) ON COMMIT DROP").format(
            sql.Identifier(NEW)
        )
    )
    cols = sql.SQL(", ").join(map(sql.Identifier, STAGED))
    registry = sql.Identifier(schema, "stg_user_logs")
    # a fallback run registers nothing the main registry holds with other content: that copy
    # is a conflict now, and promotion could not make it a fact anyway
    outer = (
        sql.SQL(
            " AND NOT EXISTS (SELECT 1 FROM public.stg_user_logs AS r"
            " WHERE r.event_id = o.event_id AND cardinality({}) > 0)"
        ).format(differences("o", "r", rule.compare))
        if apart
        else sql.SQL("")
    )
    cur.execute(
        sql.SQL("""
        WITH staged AS (
            INSERT INTO {registry} ({cols}, source_flag{run_col})
            SELECT {cols}, {flag}{run_val} FROM {offered} AS o
            WHERE o._n = 1{outer}
            ORDER BY o.event_id
            ON CONFLICT DO NOTHING
            RETURNING event_id)
        INSERT INTO {new} SELECT event_id FROM staged
        """).format(
            registry=registry,
            cols=cols,
            run_col=sql.SQL(", run_id") if apart else sql.SQL(""),
            flag=flag,
            run_val=sql.SQL(", {}").format(sql.Literal(run_id)) if apart else sql.SQL(""),
            offered=sql.Identifier(OFFERED),
            outer=outer,
            new=sql.Identifier(NEW),
        )
    )
    counts = {"stg_user_logs": cur.rowcount}
    diff = differences("o", "r", rule.compare)
    cur.execute(
        sql.SQL("""
        CREATE TEMP TABLE {conflicts} ON COMMIT DROP AS
        SELECT o.event_id, o.event_type, o.source_topic, o.source_partition, o.source_offset,
               {raw} AS raw, {reason} AS reason
        FROM {offered} AS o CROSS JOIN LATERAL {registered} AS r
        WHERE NOT (o._n = 1 AND o.event_id IN (SELECT event_id FROM {new}))
          AND cardinality({diff}) > 0
        """).format(
            conflicts=sql.Identifier(CONFLICTS),
            raw=raw_of("o"),
            reason=conflict_reason(diff, "r"),
            offered=sql.Identifier(OFFERED),
            registered=_registered(schema, run_id),
            new=sql.Identifier(NEW),
            diff=diff,
        )
    )
    counts[f"quarantined:{EVENT_ID_CONFLICT}"] = cur.rowcount
    new_events = sql.SQL(
        "(SELECT o.* FROM {offered} AS o WHERE o._n = 1 AND o.event_id IN (SELECT event_id FROM {new}))"
    ).format(offered=sql.Identifier(OFFERED), new=sql.Identifier(NEW))
    return new_events, counts


def quarantine_conflicts(
    cur: psycopg.Cursor[Any], *, flag: sql.Composable, schema: str, run_id: str | None
) -> int:
    """Write the conflicts :func:`register` found into ``schema``'s quarantine (keyed on the
    source position like every quarantine row: a replayed batch lands once)."""
    apart = schema != "public"
    cur.execute(
        sql.SQL("""
        INSERT INTO {table} (event_id, event_type, source_topic, source_partition,
                             source_offset, raw, rule, reason, source_flag{run_col})
        SELECT event_id, event_type, source_topic, source_partition, source_offset, raw,
               {rule}, reason, {flag}{run_val}
        FROM {conflicts} ORDER BY source_topic, source_partition, source_offset
        ON CONFLICT DO NOTHING
        """).format(
            table=sql.Identifier(schema, "quarantine"),
            run_col=sql.SQL(", run_id") if apart else sql.SQL(""),
            rule=sql.Literal(EVENT_ID_CONFLICT),
            flag=flag,
            run_val=sql.SQL(", {}").format(sql.Literal(run_id)) if apart else sql.SQL(""),
            conflicts=sql.Identifier(CONFLICTS),
        )
    )
    return cur.rowcount


def drop(cur: psycopg.Cursor[Any]) -> None:
    """Drop the work tables (a fallback run loads many chunks in one transaction)."""
    cur.execute(
        sql.SQL("DROP TABLE IF EXISTS {}, {}, {}").format(
            *map(sql.Identifier, (OFFERED, NEW, CONFLICTS))
        )
    )
