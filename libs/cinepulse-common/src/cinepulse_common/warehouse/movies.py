"""Loading movies (the ``movie`` topic): SCD type 1 upserts of ``dim_movie``, the genre,
keyword and company dimensions, and each movie's bridges replaced by its current lists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from cinepulse_common.warehouse.columns import DIM_MOVIE_COLUMNS, MOVIE_COLUMN_TYPES
from cinepulse_common.warehouse.load import _copy_into_temp, _ids


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
