"""Loading movies (the ``movie`` topic): SCD type 1 upserts of ``dim_movie``, the genre,
keyword and company dimensions, and each movie's bridges replaced by its current lists; a
fallback run's movies kept apart (schema ``fallback``) and their promotion.

Versions are ordered by ``fetched_at`` (when TMDB was fetched), wherever a movie row is
written: a version replaces the stored one only when it was fetched at the same time or
later, or the stored one has no fetch time (rows from before migration 0013). A version
without a fetch time never replaces one that has one: nothing says it is newer. An older
version changes nothing at all, neither the row nor the movie's bridges nor the names of
its genres, keywords and companies, so that a late or replayed record, or a fallback run
promoted after a later one, cannot put an older version back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from cinepulse_common.warehouse.columns import DIM_MOVIE_COLUMNS, MOVIE_COLUMN_TYPES
from cinepulse_common.warehouse.load import _copy_into_temp, _ids

#: (list column, dimension, its key, its extra columns)
MOVIE_LISTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("genres", "dim_genre", "genre_id", ()),
    ("keywords", "dim_keyword", "keyword_id", ()),
    ("companies", "dim_company", "company_id", ("origin_country",)),
)
#: the movie tables a fallback run writes and a promotion upserts, in order
MOVIE_TABLES: tuple[str, ...] = (
    "dim_movie",
    *(t for _, dim, _, _ in MOVIE_LISTS for t in (dim, f"bridge_movie_{dim[4:]}")),
)


def _bridge(dim: str) -> str:
    return f"bridge_movie_{dim.removeprefix('dim_')}"


_BATCH = sql.Identifier("_batch_movies")


def _pairs(column: str, source: sql.Composable = _BATCH) -> sql.Composable:
    """(movie_id, id) of every element of each movie's list ``column``."""
    return sql.SQL(
        "SELECT DISTINCT m.movie_id, (e->>'id')::integer AS id "
        "FROM {source} AS m, jsonb_array_elements(m.{column}) AS e"
    ).format(source=source, column=sql.Identifier(column))


def _older(new: str, stored: str) -> sql.Composable:
    """The movie row aliased ``new`` is an older version than the one aliased ``stored``:
    the stored one has a fetch time, and the new one has none or an earlier one. Never
    NULL (a missing stored row, as from a LEFT JOIN, is not newer)."""
    n, s = sql.Identifier(new), sql.Identifier(stored)
    return sql.SQL(
        "({s}.fetched_at IS NOT NULL"
        " AND ({n}.fetched_at IS NULL OR {n}.fetched_at < {s}.fetched_at))"
    ).format(n=n, s=s)


def _drop_older(cur: psycopg.Cursor[Any], stored: sql.Composable) -> int:
    """Remove from ``_batch_movies`` the movies ``stored`` (a table or a filtered one, aliased
    ``d``) holds a newer version of, so that nothing loads from them; returns how many."""
    cur.execute(
        sql.SQL(
            "DELETE FROM _batch_movies AS b USING {stored}"
            " WHERE d.movie_id = b.movie_id AND {older}"
        ).format(stored=stored, older=_older("b", "d"))
    )
    return cur.rowcount


def _elements(names: Sequence[str]) -> list[sql.Composable]:
    return [
        sql.SQL("(e->>'id')::integer"),
        *(sql.SQL("e->>{}").format(sql.Literal(n)) for n in names[1:]),
    ]


def load_movies(
    conn: psycopg.Connection[Any],
    movies: Iterable[Sequence[Any]],
    *,
    source_flag: str,
    schema: str = "public",
    run_id: str | None = None,
) -> dict[str, int]:
    """Upsert movies (one row per movie, :data:`MOVIE_COLUMNS` order; the engine keeps the
    latest version of each) inside the caller's transaction; returns rows changed per table
    (a movie skipped because the table holds a newer version is not counted).

    ``schema='fallback'`` (with a ``run_id``) writes a fallback run's movies apart: a movie
    the run already holds is replaced by this version unless the run's is newer (as on the
    streaming path), with its bridges; :func:`promote_run_movies` moves them later."""
    if schema not in ("public", "fallback") or (schema == "fallback") != (run_id is not None):
        raise ValueError("schema 'public' without a run_id, or 'fallback' with one")
    written: dict[str, int] = {}
    flag = sql.Literal(source_flag)
    with conn.cursor() as cur:
        if not _copy_into_temp(cur, "_batch_movies", MOVIE_COLUMN_TYPES, movies):
            cur.execute("DROP TABLE _batch_movies")
            return written
        if run_id is None:
            written, _ = _upsert_batch_movies(cur, flag)
        else:
            written = _keep_run_movies(cur, sql.Literal(run_id), flag)
        cur.execute("DROP TABLE _batch_movies")
    return written


def _upsert_batch_movies(
    cur: psycopg.Cursor[Any], flag: sql.Composable
) -> tuple[dict[str, int], int]:
    """The main tables from the temporary table ``_batch_movies`` (SCD type 1, the newest
    fetch kept); returns rows changed per table and the movies skipped as older."""
    written: dict[str, int] = {}
    cols = _ids(DIM_MOVIE_COLUMNS)

    def columns(alias: str, names: Sequence[str]) -> sql.Composable:
        return sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(c)) for c in names
        )

    content = [c for c in DIM_MOVIE_COLUMNS[1:] if c != "fetched_at"]
    # SCD type 1: overwrite a changed movie unless the stored version is newer; leave an
    # unchanged one. A later fetch of the same content only moves fetched_at (so that a
    # version fetched between the two cannot come back), not updated_at, which says when
    # the movie's content last changed
    cur.execute(
        sql.SQL("""
        INSERT INTO dim_movie ({cols}, source_flag)
        SELECT {cols}, {flag} FROM _batch_movies ORDER BY movie_id
        ON CONFLICT (movie_id) DO UPDATE SET ({rest}, source_flag, updated_at)
            = ({excluded}, EXCLUDED.source_flag,
               CASE WHEN ({current_content}) IS DISTINCT FROM ({excluded_content})
                    THEN now() ELSE dim_movie.updated_at END)
        WHERE NOT {older} AND ({current}) IS DISTINCT FROM ({excluded})
        """).format(
            cols=cols,
            flag=flag,
            rest=_ids(DIM_MOVIE_COLUMNS[1:]),
            excluded=columns("excluded", DIM_MOVIE_COLUMNS[1:]),
            current=columns("dim_movie", DIM_MOVIE_COLUMNS[1:]),
            current_content=columns("dim_movie", content),
            excluded_content=columns("excluded", content),
            older=_older("excluded", "dim_movie"),
        )
    )
    written["dim_movie"] = cur.rowcount
    # the upsert locked every conflicting row (even those its WHERE skipped), so this sees
    # what it decided, whatever a concurrent load does: an older version's lists go too
    older = _drop_older(cur, sql.SQL("dim_movie AS d"))
    for column, dim, key, extra in MOVIE_LISTS:
        names = [key, "name", *extra]
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
                values=sql.SQL(", ").join(_elements(names)),
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
        bridge = sql.Identifier(_bridge(dim))
        pairs = _pairs(column)
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
        written[_bridge(dim)] = removed + cur.rowcount
    return written, older


def _keep_run_movies(
    cur: psycopg.Cursor[Any], run: sql.Composable, flag: sql.Composable
) -> dict[str, int]:
    """A fallback run's tables from ``_batch_movies``: each movie replaces the run's earlier
    version of it (its bridges go with it, by cascade), unless the run's is newer."""
    written: dict[str, int] = {}
    cols = _ids(DIM_MOVIE_COLUMNS)
    _drop_older(
        cur,
        sql.SQL("(SELECT * FROM fallback.dim_movie WHERE run_id = {run}) AS d").format(run=run),
    )
    cur.execute(
        sql.SQL(
            "DELETE FROM fallback.dim_movie WHERE run_id = {run}"
            " AND movie_id IN (SELECT movie_id FROM _batch_movies)"
        ).format(run=run)
    )
    cur.execute(
        sql.SQL("""
        INSERT INTO fallback.dim_movie (run_id, {cols}, source_flag)
        SELECT {run}, {cols}, {flag} FROM _batch_movies ORDER BY movie_id
        """).format(cols=cols, run=run, flag=flag)
    )
    written["dim_movie"] = cur.rowcount
    for column, dim, key, extra in MOVIE_LISTS:
        names = [key, "name", *extra]
        cur.execute(
            sql.SQL("""
            INSERT INTO {dim} (run_id, {names}, source_flag)
            SELECT DISTINCT ON ((e->>'id')::integer) {run}, {values}, {flag}
            FROM _batch_movies, jsonb_array_elements({column}) AS e
            ORDER BY (e->>'id')::integer
            ON CONFLICT (run_id, {key}) DO UPDATE SET ({set_cols}) = ROW({set_vals})
            """).format(
                dim=sql.Identifier("fallback", dim),
                names=_ids(names),
                run=run,
                values=sql.SQL(", ").join(_elements(names)),
                flag=flag,
                column=sql.Identifier(column),
                key=sql.Identifier(key),
                set_cols=_ids(names[1:]),
                set_vals=sql.SQL(", ").join(
                    sql.SQL("EXCLUDED.{}").format(sql.Identifier(n)) for n in names[1:]
                ),
            )
        )
        written[dim] = cur.rowcount
        cur.execute(
            sql.SQL("""
            INSERT INTO {bridge} (run_id, movie_id, {key}, source_flag)
            SELECT {run}, movie_id, id, {flag} FROM ({pairs}) AS p ORDER BY movie_id, id
            """).format(
                bridge=sql.Identifier("fallback", _bridge(dim)),
                key=sql.Identifier(key),
                run=run,
                flag=flag,
                pairs=_pairs(column),
            )
        )
        written[_bridge(dim)] = cur.rowcount
    return written


def _run_movies(run: sql.Composable) -> sql.Composable:
    """A fallback run's movies as :data:`MOVIE_COLUMNS` rows (lists rebuilt from its bridges)."""
    lists = []
    for column, dim, key, extra in MOVIE_LISTS:
        fields = sql.SQL(", ").join(
            sql.SQL("{}, d.{}").format(sql.Literal(n), sql.Identifier(n)) for n in ("name", *extra)
        )
        lists.append(
            sql.SQL("""
            coalesce((SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object('id', d.{key}, {fields}))
                                       ORDER BY d.{key})
                      FROM {bridge} AS b JOIN {dim} AS d USING (run_id, {key})
                      WHERE b.run_id = m.run_id AND b.movie_id = m.movie_id), '[]'::jsonb)
                AS {column}
            """).format(
                key=sql.Identifier(key),
                fields=fields,
                bridge=sql.Identifier("fallback", _bridge(dim)),
                dim=sql.Identifier("fallback", dim),
                column=sql.Identifier(column),
            )
        )
    return sql.SQL(
        "SELECT {cols}, {lists} FROM fallback.dim_movie AS m WHERE m.run_id = {run}"
    ).format(
        cols=sql.SQL(", ").join(
            sql.SQL("m.{}").format(sql.Identifier(c)) for c in DIM_MOVIE_COLUMNS
        ),
        lists=sql.SQL(", ").join(lists),
        run=run,
    )


def promote_run_movies(
    cur: psycopg.Cursor[Any], run_id: str, *, dry_run: bool, source_flag: str
) -> dict[str, dict[str, int]]:
    """Upsert one fallback run's movies into the main movie tables with the streaming path's
    load (SCD type 1: the run's version overwrites a different one unless the main table's
    was fetched later; an equal one is left as it is), inside the caller's transaction. Per
    table ``{"inserted": n, "present": m}``: rows new or changed (for a bridge, added or
    removed) and rows already as the run has them; ``dim_movie`` also has ``"older": k``,
    the run's movies the main table holds a newer version of (left as they are, lists
    included: they count nowhere else). ``dry_run`` counts the same with reads only."""
    run, flag = sql.Literal(run_id), sql.Literal(source_flag)
    source = _run_movies(run)
    # the run's movies that will be loaded: not older than the main table's version
    newer = sql.SQL(
        "SELECT r.* FROM ({source}) AS r LEFT JOIN dim_movie AS d USING (movie_id)"
        " WHERE NOT {older}"
    ).format(source=source, older=_older("r", "d"))

    def one(query: sql.Composable, movies: sql.Composable = newer) -> tuple[int, ...]:
        cur.execute(sql.SQL("WITH b AS ({movies}) ").format(movies=movies) + query)
        row = cur.fetchone()
        assert row is not None
        return tuple(int(v) for v in row)

    counts: dict[str, dict[str, int]] = {}
    rest = DIM_MOVIE_COLUMNS[1:]
    older, changed, offered = one(
        sql.SQL("""
        SELECT count(*) FILTER (WHERE {older}),
               count(*) FILTER (WHERE NOT {older}
                                  AND (d.movie_id IS NULL OR ({cur}) IS DISTINCT FROM ({new}))),
               count(*)
        FROM b LEFT JOIN dim_movie AS d USING (movie_id)
        """).format(
            older=_older("b", "d"),
            cur=sql.SQL(", ").join(sql.SQL("d.{}").format(sql.Identifier(c)) for c in rest),
            new=sql.SQL(", ").join(sql.SQL("b.{}").format(sql.Identifier(c)) for c in rest),
        ),
        source,
    )
    counts["dim_movie"] = {
        "inserted": changed,
        "present": offered - changed - older,
        "older": older,
    }
    for column, dim, key, extra in MOVIE_LISTS:
        names = [key, "name", *extra]
        changed, offered = one(
            sql.SQL("""
            , e AS (SELECT DISTINCT ON ((e->>'id')::integer) {values}
                    FROM b, jsonb_array_elements(b.{column}) AS e
                    ORDER BY (e->>'id')::integer)
            SELECT count(*) FILTER (WHERE d.{key} IS NULL
                                       OR ({cur}, d.source_flag) IS DISTINCT FROM
                                          ({new}, {flag}::source_flag)),
                   count(*)
            FROM e LEFT JOIN {dim} AS d USING ({key})
            """).format(
                values=sql.SQL(", ").join(
                    sql.SQL("{} AS {}").format(v, sql.Identifier(n))
                    for v, n in zip(_elements(names), names, strict=True)
                ),
                column=sql.Identifier(column),
                key=sql.Identifier(key),
                cur=sql.SQL(", ").join(
                    sql.SQL("d.{}").format(sql.Identifier(n)) for n in names[1:]
                ),
                new=sql.SQL(", ").join(
                    sql.SQL("e.{}").format(sql.Identifier(n)) for n in names[1:]
                ),
                flag=flag,
                dim=sql.Identifier(dim),
            )
        )
        counts[dim] = {"inserted": changed, "present": offered - changed}
        added, removed, present = one(
            sql.SQL("""
            , p AS ({pairs}),
              q AS (SELECT x.movie_id, x.{key} AS id FROM {bridge} AS x
                    WHERE x.movie_id IN (SELECT movie_id FROM b))
            SELECT (SELECT count(*) FROM (SELECT * FROM p EXCEPT SELECT * FROM q) AS a),
                   (SELECT count(*) FROM (SELECT * FROM q EXCEPT SELECT * FROM p) AS r),
                   (SELECT count(*) FROM (SELECT * FROM p INTERSECT SELECT * FROM q) AS k)
            """).format(
                pairs=_pairs(column, sql.SQL("b")),
                key=sql.Identifier(key),
                bridge=sql.Identifier(_bridge(dim)),
            )
        )
        counts[_bridge(dim)] = {"inserted": added + removed, "present": present}
    if not dry_run:
        cur.execute(
            sql.SQL("CREATE TEMP TABLE _batch_movies ON COMMIT DROP AS {source}").format(
                source=source
            )
        )
        written, skipped = _upsert_batch_movies(cur, flag)
        cur.execute("DROP TABLE _batch_movies")
        movies = counts["dim_movie"]
        offered_movies = movies["inserted"] + movies["present"] + movies["older"]
        for table, n in written.items():
            counts[table]["inserted"] = n
        # the upsert's own decisions: a load committed since the counts above may have
        # moved a movie between present, inserted and older; the three still add up
        movies["older"] = skipped
        movies["present"] = offered_movies - movies["inserted"] - skipped
    return counts
