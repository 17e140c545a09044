"""The load step into the PostgreSQL star schema, shared by every engine (Spark, pandas).

Extract and transform differ per engine; loading does not. An engine hands over *modelled
event rows* (validated, deduplicated, normalised; one tuple per event in
:data:`EVENT_COLUMNS` order) and *quarantined rows* (:data:`QUARANTINE_COLUMNS`), and
:func:`load_events` writes them in the caller's transaction:

* the rows are COPYed into temporary tables (the fast path into PostgreSQL), then
* ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` into staging, the facts and the
  quarantine, keyed on ``event_id`` (the quarantine on the source position): a replayed
  batch writes nothing twice, and a fact already written (by Spark, or a promoted run) is
  never overwritten;
* dimensions "as they appear": ``dim_date`` rows for new dates, ``dim_user`` first/last
  seen (widened, never narrowed).

``schema='fallback'`` (with a ``run_id``) writes a pandas-fallback run apart: facts and
quarantine only, no staging and no dimensions (promotion adds those).
:func:`promote_run` moves one such run into the main facts (``--dry-run``: only counts), and
:func:`existing_event_ids` tells a chunked job which events an earlier chunk already wrote.

Movies (the ``movie`` topic) load through :func:`load_movies`: SCD type 1 upserts of
``dim_movie`` (a changed movie overwrites its row; an unchanged one is not touched), the
genre, keyword and company dimensions, and the movie's bridges replaced by its current lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

#: columns every fact table shares, in order
FACT_BASE: tuple[str, ...] = (
    "event_id",
    "user_id",
    "movie_id",
    "date_key",
    "occurred_at",
    "received_at",
    "session_id",
    "source_topic",
    "source_partition",
    "source_offset",
)
#: each event type's own fact columns
FACT_EXTRA: dict[str, tuple[str, ...]] = {
    "watch": ("position_seconds", "duration_seconds", "completion_ratio", "completed"),
    "rate": ("rating",),
    "comment": ("comment_text", "emotion", "sentiment", "emotion_scores", "classifier_version"),
    "click": ("target",),
}
FACT_TABLE: dict[str, str] = {
    "watch": "fact_watch",
    "rate": "fact_rating",
    "comment": "fact_comment",
    "click": "fact_click",
}
#: one modelled event, as an engine hands it over (name, PostgreSQL type)
EVENT_COLUMN_TYPES: tuple[tuple[str, str], ...] = (
    ("event_id", "uuid"),
    ("event_type", "text"),
    ("user_id", "text"),
    ("movie_id", "bigint"),
    ("date_key", "integer"),
    ("occurred_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("session_id", "text"),
    ("source_topic", "text"),
    ("source_partition", "integer"),
    ("source_offset", "bigint"),
    ("payload", "jsonb"),
    ("position_seconds", "numeric(10, 2)"),
    ("duration_seconds", "numeric(10, 2)"),
    ("completion_ratio", "numeric(5, 4)"),
    ("completed", "boolean"),
    ("rating", "numeric(2, 1)"),
    ("comment_text", "text"),
    ("emotion", "text"),
    ("sentiment", "real"),
    ("emotion_scores", "jsonb"),
    ("classifier_version", "text"),
    ("target", "text"),
)
EVENT_COLUMNS: tuple[str, ...] = tuple(name for name, _ in EVENT_COLUMN_TYPES)
QUARANTINE_COLUMN_TYPES: tuple[tuple[str, str], ...] = (
    ("event_id", "uuid"),
    ("event_type", "text"),
    ("source_topic", "text"),
    ("source_partition", "integer"),
    ("source_offset", "bigint"),
    ("raw", "text"),
    ("rule", "text"),
    ("reason", "text"),
)
QUARANTINE_COLUMNS: tuple[str, ...] = tuple(name for name, _ in QUARANTINE_COLUMN_TYPES)

#: one movie as an engine hands it over (lists as JSON arrays of {id, name[, origin_country]})
MOVIE_COLUMN_TYPES: tuple[tuple[str, str], ...] = (
    ("movie_id", "bigint"),
    ("imdb_id", "text"),
    ("title", "text"),
    ("original_title", "text"),
    ("original_language", "text"),
    ("overview", "text"),
    ("tagline", "text"),
    ("status", "text"),
    ("release_date", "date"),
    ("runtime_minutes", "integer"),
    ("budget", "bigint"),
    ("revenue", "bigint"),
    ("popularity", "double precision"),
    ("vote_average", "numeric(3, 1)"),
    ("vote_count", "integer"),
    ("adult", "boolean"),
    ("genres", "jsonb"),
    ("keywords", "jsonb"),
    ("companies", "jsonb"),
)
MOVIE_COLUMNS: tuple[str, ...] = tuple(name for name, _ in MOVIE_COLUMN_TYPES)
DIM_MOVIE_COLUMNS: tuple[str, ...] = MOVIE_COLUMNS[:-3]


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
) -> dict[str, int]:
    """Write one batch inside the caller's transaction; returns the rows *inserted* per
    table (a replay inserts 0). ``events`` in :data:`EVENT_COLUMNS` order,
    ``quarantined`` in :data:`QUARANTINE_COLUMNS` order."""
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
    anyway) if missing; returns their names."""
    events, quarantine = batch_tables(name)
    for table, column_types in (
        (events, (*EVENT_COLUMN_TYPES, ("is_late", "boolean"))),
        (quarantine, QUARANTINE_COLUMN_TYPES),
    ):
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
) -> dict[str, int]:
    apart = schema != "public"
    if apart and run_id is None:
        raise ValueError("a run_id is needed to write outside the public schema")
    written: dict[str, int] = {}
    flag = sql.Literal(source_flag)
    extra = [sql.Literal(run_id)] if apart else []
    extra_cols = [sql.Identifier("run_id")] if apart else []
    if events is not None and not apart:
        written |= _upsert_dims(cur, events, flag)
        cur.execute(
            sql.SQL("""
            INSERT INTO stg_user_logs (event_id, event_type, user_id, movie_id, occurred_at,
                received_at, session_id, payload, source_topic, source_partition,
                source_offset, source_flag)
            SELECT event_id, event_type, user_id, movie_id, occurred_at, received_at,
                   session_id, payload, source_topic, source_partition, source_offset, {flag}
            FROM {events} AS e ORDER BY event_id
            ON CONFLICT (event_id) DO NOTHING
            """).format(flag=flag, events=events)
        )
        written["stg_user_logs"] = cur.rowcount
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
    return written


def existing_event_ids(
    conn: psycopg.Connection[Any],
    event_ids: Sequence[str],
    *,
    schema: str = "public",
    run_id: str | None = None,
) -> set[str]:
    """Which of ``event_ids`` (valid UUIDs) already have a fact, in any of the four fact
    tables of ``schema`` (of the run ``run_id`` outside ``public``): an event is modelled
    once, whatever its type, even when its copies are read in different chunks."""
    if not event_ids:
        return set()
    apart = schema != "public"
    if apart and run_id is None:
        raise ValueError("a run_id is needed to read outside the public schema")
    union = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT event_id FROM {t} WHERE event_id = ANY(%(ids)s::uuid[]){run}").format(
            t=sql.Identifier(schema, table),
            run=sql.SQL(" AND run_id = %(run)s") if apart else sql.SQL(""),
        )
        for table in FACT_TABLE.values()
    )
    with conn.cursor() as cur:
        cur.execute(union, {"ids": list(event_ids), "run": run_id})
        return {str(row[0]) for row in cur}


def _fact_in_public(alias: str) -> sql.Composable:
    """True when the event of ``alias`` has a fact in any public fact table."""
    return sql.SQL(" OR ").join(
        sql.SQL("EXISTS (SELECT 1 FROM {t} AS p WHERE p.event_id = {a}.event_id)").format(
            t=sql.Identifier("public", table), a=sql.Identifier(alias)
        )
        for table in FACT_TABLE.values()
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

    * a fact whose ``event_id`` already has a fact in any public fact table is skipped (its
      copy there stays as it is); the others are inserted with the run's ``source_flag``;
    * ``dim_date`` and ``dim_user`` as :func:`load_events` does them, from the facts that
      are inserted (the foreign keys hold; new users get ``source_flag``);
    * the run's quarantine, keyed on the source position like every quarantine row.

    Staging is not written: a promoted run's raw records stay in MongoDB (the replay
    source); the facts are what the aggregates and the api read."""
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
                SELECT {cols} FROM {t} AS f WHERE f.run_id = {run} AND NOT ({present})
                ORDER BY f.event_id
                ON CONFLICT DO NOTHING
                """).format(
                    public=sql.Identifier("public", table),
                    cols=cols,
                    t=target,
                    run=run,
                    present=_fact_in_public("f"),
                )
            )
            inserted = cur.rowcount
            offered = count(
                sql.SQL("SELECT count(*) FROM {t} WHERE run_id = {run}").format(t=target, run=run)
            )
            counts[table] = {"inserted": inserted, "present": offered - inserted}
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


def load_movies(
    conn: psycopg.Connection[Any], movies: Iterable[Sequence[Any]], *, source_flag: str
) -> dict[str, int]:
    """Upsert movies (one row per movie, :data:`MOVIE_COLUMNS` order; the engine keeps the
    latest version of each) inside the caller's transaction; returns rows changed per table."""
    written: dict[str, int] = {}
    flag = sql.Literal(source_flag)
    with conn.cursor() as cur:
        if not _copy_into_temp(cur, "_batch_movies", MOVIE_COLUMN_TYPES, movies):
            cur.execute("DROP TABLE _batch_movies")
            return written
        cols = _ids(DIM_MOVIE_COLUMNS)
        excluded = sql.SQL(", ").join(
            sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in DIM_MOVIE_COLUMNS[1:]
        )
        current = sql.SQL(", ").join(
            sql.SQL("dim_movie.{}").format(sql.Identifier(c)) for c in DIM_MOVIE_COLUMNS[1:]
        )
        # SCD type 1: overwrite a changed movie; leave an unchanged one (and its updated_at)
        cur.execute(
            sql.SQL("""
            INSERT INTO dim_movie ({cols}, source_flag)
            SELECT {cols}, {flag} FROM _batch_movies ORDER BY movie_id
            ON CONFLICT (movie_id) DO UPDATE SET ({rest}, source_flag, updated_at)
                = ({excluded}, EXCLUDED.source_flag, now())
            WHERE ({current}) IS DISTINCT FROM ({excluded})
            """).format(
                cols=cols,
                flag=flag,
                rest=_ids(DIM_MOVIE_COLUMNS[1:]),
                excluded=excluded,
                current=current,
            )
        )
        written["dim_movie"] = cur.rowcount
        for column, dim, key, extra in (
            ("genres", "dim_genre", "genre_id", ()),
            ("keywords", "dim_keyword", "keyword_id", ()),
            ("companies", "dim_company", "company_id", ("origin_country",)),
        ):
            names = [key, "name", *extra]
            values = [
                sql.SQL("(e->>'id')::integer"),
                sql.SQL("e->>'name'"),
                *(sql.SQL("e->>{}").format(sql.Literal(x)) for x in extra),
            ]
            cur.execute(
                sql.SQL("""
                INSERT INTO {dim} ({names}, source_flag)
                SELECT DISTINCT ON ((e->>'id')::integer) {values}, {flag}
                FROM _batch_movies, jsonb_array_elements({column}) AS e
                ORDER BY (e->>'id')::integer
                ON CONFLICT ({key}) DO UPDATE SET ({set_cols}) = ({set_vals})
                WHERE ({cur_vals}) IS DISTINCT FROM ({set_vals})
                """).format(
                    dim=sql.Identifier(dim),
                    names=_ids(names),
                    values=sql.SQL(", ").join(values),
                    flag=flag,
                    column=sql.Identifier(column),
                    key=sql.Identifier(key),
                    set_cols=_ids([*names[1:], "source_flag"]),
                    set_vals=sql.SQL(", ").join(
                        sql.SQL("EXCLUDED.{}").format(sql.Identifier(n))
                        for n in [*names[1:], "source_flag"]
                    ),
                    cur_vals=sql.SQL(", ").join(
                        sql.SQL("{}.{}").format(sql.Identifier(dim), sql.Identifier(n))
                        for n in [*names[1:], "source_flag"]
                    ),
                )
            )
            written[dim] = cur.rowcount
            bridge_name = f"bridge_movie_{dim.removeprefix('dim_')}"
            bridge = sql.Identifier(bridge_name)
            pairs = sql.SQL(
                "SELECT DISTINCT m.movie_id, (e->>'id')::integer AS id "
                "FROM _batch_movies AS m, jsonb_array_elements(m.{column}) AS e"
            ).format(column=sql.Identifier(column))
            cur.execute(
                sql.SQL("""
                DELETE FROM {bridge} AS b
                USING _batch_movies AS m
                WHERE b.movie_id = m.movie_id
                  AND (b.movie_id, b.{key}) NOT IN ({pairs})
                """).format(bridge=bridge, key=sql.Identifier(key), pairs=pairs)
            )
            removed = cur.rowcount
            cur.execute(
                sql.SQL("""
                INSERT INTO {bridge} (movie_id, {key}, source_flag)
                SELECT movie_id, id, {flag} FROM ({pairs}) AS p ORDER BY movie_id, id
                ON CONFLICT DO NOTHING
                """).format(bridge=bridge, key=sql.Identifier(key), flag=flag, pairs=pairs)
            )
            written[bridge_name] = removed + cur.rowcount
        cur.execute("DROP TABLE _batch_movies")
    return written
