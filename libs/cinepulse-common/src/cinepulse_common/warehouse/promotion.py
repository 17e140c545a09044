"""Promoting a pandas-fallback run (schema ``fallback``) into the main facts, Spark's facts
winning (see :func:`promote_run`)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from cinepulse_common.validation import EVENT_ID_CONFLICT
from cinepulse_common.warehouse import registry
from cinepulse_common.warehouse.columns import FACT_BASE, FACT_EXTRA, FACT_TABLE, QUARANTINE_COLUMNS
from cinepulse_common.warehouse.load import _ids, _upsert_dims
from cinepulse_common.warehouse.movies import promote_run_movies

#: the run's ids this promotion registered in the main registry (their facts are promoted)
PROMOTED = "_promotion_registered"


def _fact_in_public(alias: str) -> sql.Composable:
    """True when the event of ``alias`` is in the main event-id registry (staged by Spark,
    a replay or an earlier promotion, as any event type; every main fact is registered)."""
    return sql.SQL(
        "EXISTS (SELECT 1 FROM public.stg_user_logs AS p WHERE p.event_id = {a}.event_id)"
    ).format(a=sql.Identifier(alias))


def _conflicts(run: sql.Composable) -> sql.Composable:
    """The run's registered events whose id the main registry holds with other content."""
    diff = registry.differences("f", "p")
    return sql.SQL("""
        SELECT f.event_id, f.event_type, f.source_topic, f.source_partition, f.source_offset,
               {raw} AS raw, {reason} AS reason
        FROM fallback.stg_user_logs AS f JOIN public.stg_user_logs AS p USING (event_id)
        WHERE f.run_id = {run} AND cardinality({diff}) > 0
        """).format(
        raw=registry.raw_of("f"), reason=registry.conflict_reason(diff, "p"), run=run, diff=diff
    )


def promote_run(
    conn: psycopg.Connection[Any],
    run_id: str,
    *,
    dry_run: bool = False,
    source_flag: str = "pandas",
) -> dict[str, dict[str, int]]:
    """Move one fallback run into the main tables inside the caller's transaction; returns
    per table ``{"inserted": n, "present": m}`` (``dry_run``: what *would* be inserted, and
    nothing is written; for ``dim_user``, "inserted" counts new or widened users).
    Idempotent, and Spark's facts win:

    * the run's event-id registry (``fallback.stg_user_logs``) is registered in the main one
      (``stg_user_logs``, :mod:`.registry`), and only the facts of the ids registered now are
      inserted, with the run's ``source_flag``. An id the main registry already holds (Spark,
      a replay or another run wrote it, as any event type) keeps its fact there: with the
      same content the run's copy is skipped ("present"); with other content it is
      quarantined (``event_id_conflict``, counted as ``event_id_conflict``);
    * ``dim_date`` and ``dim_user`` as :func:`load_events` does them, from the facts that
      are inserted (the foreign keys hold; new users get ``source_flag``);
    * the run's movies (``fallback.dim_movie`` and its bridges) upserted into ``dim_movie``,
      its genre, keyword and company dimensions and bridges by the streaming path's SCD
      type 1 load (:func:`.movies.promote_run_movies`): the run's version overwrites a
      different one unless the main table's was fetched later (``fetched_at``; counted as
      ``"older"`` for ``dim_movie``, and its lists left alone too), so runs promoted in any
      order leave the latest; an equal one is left as it is, so promoting again changes
      nothing;
    * the run's quarantine, keyed on the source position like every quarantine row.

    A run written before the registry (migration 0011) has a registry built from its facts,
    without payloads: such ids are compared on the other fields only."""
    run = sql.Literal(run_id)
    new_facts = sql.SQL(" UNION ALL ").join(
        sql.SQL(
            "SELECT f.user_id, f.date_key, f.occurred_at FROM {t} AS f "
            "WHERE f.run_id = {run} AND NOT ({present})"
        ).format(t=sql.Identifier("fallback", table), run=run, present=_fact_in_public("f"))
        for table in FACT_TABLE.values()
    )
    events = sql.SQL("({})").format(new_facts)
    counts: dict[str, dict[str, int]] = {}
    same_position = sql.SQL(
        "(p.source_topic, p.source_partition, p.source_offset, p.event_id) IS NOT DISTINCT FROM "
        "(q.source_topic, q.source_partition, q.source_offset, q.event_id)"
    )
    with conn.cursor() as cur:

        def pair(query: sql.Composed) -> tuple[int, int]:
            cur.execute(query)
            row = cur.fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        def count(query: sql.Composed) -> int:
            cur.execute(query)
            row = cur.fetchone()
            assert row is not None
            return int(row[0])

        # dimensions: counted first (the same whether or not it is a dry run), then written
        new, old = pair(
            sql.SQL("""
            SELECT count(*) FILTER (WHERE d.date_key IS NULL),
                   count(*) FILTER (WHERE d.date_key IS NOT NULL)
            FROM (SELECT DISTINCT date_key FROM {events} AS e) AS x
            LEFT JOIN dim_date AS d USING (date_key)
            """).format(events=events)
        )
        counts["dim_date"] = {"inserted": new, "present": old}
        changed = sql.SQL("d.user_id IS NULL OR u.f < d.first_seen_at OR u.l > d.last_seen_at")
        new, old = pair(
            sql.SQL("""
            SELECT count(*) FILTER (WHERE {changed}), count(*) FILTER (WHERE NOT ({changed}))
            FROM (SELECT user_id, min(occurred_at) AS f, max(occurred_at) AS l
                  FROM {events} AS e GROUP BY user_id) AS u
            LEFT JOIN dim_user AS d USING (user_id)
            """).format(events=events, changed=changed)
        )
        counts["dim_user"] = {"inserted": new, "present": old}
        if not dry_run:
            written = _upsert_dims(cur, events, sql.Literal(source_flag))
            for dim, n in written.items():
                total = counts[dim]["inserted"] + counts[dim]["present"]
                counts[dim] = {"inserted": n, "present": total - n}
        _register_run(cur, run, counts, dry_run=dry_run, source_flag=source_flag)
        for event_type, table in FACT_TABLE.items():
            target = sql.Identifier("fallback", table)
            if dry_run:
                new, old = pair(
                    sql.SQL("""
                    SELECT count(*) FILTER (WHERE NOT present), count(*) FILTER (WHERE present)
                    FROM (SELECT {present} AS present FROM {t} AS f WHERE f.run_id = {run}) AS x
                    """).format(present=_fact_in_public("f"), t=target, run=run)
                )
                counts[table] = {"inserted": new, "present": old}
                continue
            cols = _ids([*FACT_BASE, *FACT_EXTRA[event_type], "source_flag"])
            cur.execute(
                sql.SQL("""
                INSERT INTO {public} ({cols})
                SELECT {cols} FROM {t} AS f
                WHERE f.run_id = {run} AND f.event_id IN (SELECT event_id FROM {promoted})
                ORDER BY f.event_id
                ON CONFLICT DO NOTHING
                """).format(
                    public=sql.Identifier("public", table),
                    cols=cols,
                    t=target,
                    run=run,
                    promoted=sql.Identifier(PROMOTED),
                )
            )
            inserted = cur.rowcount
            offered = count(
                sql.SQL("SELECT count(*) FROM {t} WHERE run_id = {run}").format(t=target, run=run)
            )
            counts[table] = {"inserted": inserted, "present": offered - inserted}
        if not dry_run:
            cur.execute(
                sql.SQL("""
                INSERT INTO public.stg_comments (event_id, user_id, movie_id, occurred_at,
                                                 comment_text, source_flag)
                SELECT event_id, user_id, movie_id, occurred_at, comment_text, {flag}
                FROM fallback.fact_comment
                WHERE run_id = {run} AND event_id IN (SELECT event_id FROM {promoted})
                ON CONFLICT (event_id) DO NOTHING
                """).format(
                    flag=sql.Literal(source_flag), run=run, promoted=sql.Identifier(PROMOTED)
                )
            )
            cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(PROMOTED)))
        counts.update(promote_run_movies(cur, run_id, dry_run=dry_run, source_flag=source_flag))
        if dry_run:
            new, old = pair(
                sql.SQL("""
                SELECT count(*) FILTER (WHERE NOT present), count(*) FILTER (WHERE present)
                FROM (SELECT EXISTS (SELECT 1 FROM public.quarantine AS p WHERE {same}) AS present
                      FROM fallback.quarantine AS q WHERE q.run_id = {run}) AS x
                """).format(same=same_position, run=run)
            )
            counts["quarantine"] = {"inserted": new, "present": old}
        else:
            cols = _ids([*QUARANTINE_COLUMNS, "source_flag"])
            cur.execute(
                sql.SQL("""
                INSERT INTO public.quarantine ({cols})
                SELECT {cols} FROM fallback.quarantine WHERE run_id = {run}
                ORDER BY quarantine_id
                ON CONFLICT DO NOTHING
                """).format(cols=cols, run=run)
            )
            inserted = cur.rowcount
            offered = count(
                sql.SQL("SELECT count(*) FROM fallback.quarantine WHERE run_id = {run}").format(
                    run=run
                )
            )
            counts["quarantine"] = {"inserted": inserted, "present": offered - inserted}
    return counts


def _register_run(
    cur: psycopg.Cursor[Any],
    run: sql.Composable,
    counts: dict[str, dict[str, int]],
    *,
    dry_run: bool,
    source_flag: str,
) -> None:
    """Register the run's ids in the main registry (into the work table :data:`PROMOTED`)
    and quarantine its copies in conflict with what the main registry holds; ``dry_run``:
    only count."""
    conflicts = _conflicts(run)
    cur.execute(
        sql.SQL("""
        SELECT count(*) FILTER (WHERE NOT {present}), count(*) FILTER (WHERE {present})
        FROM fallback.stg_user_logs AS f WHERE f.run_id = {run}
        """).format(present=_fact_in_public("f"), run=run)
    )
    row = cur.fetchone()
    assert row is not None
    new, old = int(row[0]), int(row[1])
    cur.execute(sql.SQL("SELECT count(*) FROM ({}) AS c").format(conflicts))
    found = int(cur.fetchone()[0])  # type: ignore[index]
    if dry_run:
        counts["stg_user_logs"] = {"inserted": new, "present": old}
        counts[EVENT_ID_CONFLICT] = {"inserted": found, "present": 0}
        return
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} (event_id uuid PRIMARY KEY) ON COMMIT DROP").format(
            sql.Identifier(PROMOTED)
        )
    )
    cols = _ids(registry.STAGED)
    # ON CONFLICT: an id Spark registers meanwhile stays Spark's (its fact wins)
    cur.execute(
        sql.SQL("""
        WITH staged AS (
            INSERT INTO public.stg_user_logs ({cols}, source_flag)
            SELECT {cols}, {flag} FROM fallback.stg_user_logs AS f
            WHERE f.run_id = {run} AND NOT {present}
            ORDER BY f.event_id
            ON CONFLICT DO NOTHING
            RETURNING event_id)
        INSERT INTO {promoted} SELECT event_id FROM staged
        """).format(
            cols=cols,
            flag=sql.Literal(source_flag),
            run=run,
            present=_fact_in_public("f"),
            promoted=sql.Identifier(PROMOTED),
        )
    )
    inserted = cur.rowcount
    counts["stg_user_logs"] = {"inserted": inserted, "present": new + old - inserted}
    cur.execute(
        sql.SQL("""
        INSERT INTO public.quarantine (event_id, event_type, source_topic, source_partition,
                                       source_offset, raw, rule, reason, source_flag)
        SELECT event_id, event_type, source_topic, source_partition, source_offset, raw,
               {rule}, reason, {flag}
        FROM ({conflicts}) AS c ORDER BY event_id
        ON CONFLICT DO NOTHING
        """).format(
            rule=sql.Literal(EVENT_ID_CONFLICT), flag=sql.Literal(source_flag), conflicts=conflicts
        )
    )
    counts[EVENT_ID_CONFLICT] = {"inserted": cur.rowcount, "present": found - cur.rowcount}
