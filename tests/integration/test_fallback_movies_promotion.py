"""A fallback *run* covers the ``movie`` topic: its movies are kept apart in
``fallback.dim_movie`` and its bridges, promotion upserts them into the main tables (SCD type 1,
the latest fetch winning, whatever the order of promotion), promoting again changes nothing,
and the result is what a replay (the streaming path's load, over the same transforms) gives
for the same records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cinepulse_archiver.documents import Source, Unusable, to_document
from cinepulse_common.mongo import make_client
from cinepulse_common.postgres import connect
from cinepulse_common.rules import active_rules
from cinepulse_common.settings import MongoSettings, PostgresSettings
from cinepulse_common.warehouse import DIM_MOVIE_COLUMNS
from tests.integration.test_fallback_movies import TOPIC, _movie, corpus

pytestmark = pytest.mark.integration

ARRIVED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WINDOW = (ARRIVED - timedelta(hours=1), ARRIVED + timedelta(hours=1))
MAIN = ("dim_movie", "dim_genre", "dim_keyword", "dim_company")
BRIDGES = ("bridge_movie_genre", "bridge_movie_keyword", "bridge_movie_company")


def _archive(mongo: MongoSettings, records: list[Any], at: datetime, first: int = 0) -> int:
    docs = []
    for i, record in enumerate(records, start=first):
        try:  # what the archiver dead-letters never reaches MongoDB
            value = json.dumps(record).encode()
            docs.append(
                to_document(Source(TOPIC, 0, i, b"k", None), value, at, movie_topic=True)[1]
            )
        except Unusable:
            continue
    with make_client(mongo) as client:
        client[mongo.database]["movies"].insert_many(docs)
    return len(docs)


def _settings(pg: PostgresSettings, mongo: MongoSettings) -> Any:
    from cinepulse_pandas_fallback.settings import PandasFallbackSettings

    return PandasFallbackSettings(postgres=pg, mongo=mongo)


def _run(pg: PostgresSettings, mongo: MongoSettings, kind: str, **kw: Any) -> Any:
    from cinepulse_pandas_fallback.job import run_window

    window = kw.pop("window", WINDOW)
    return run_window(_settings(pg, mongo), active_rules(), *window, kind=kind, progress=None, **kw)


def _movies(pg: PostgresSettings, schema: str = "public") -> dict[str, list[tuple[Any, ...]]]:
    """Every movie table's rows (what a reader sees: no source flag or load times)."""
    cols = ", ".join(DIM_MOVIE_COLUMNS)
    queries = {
        "dim_movie": f"SELECT {cols} FROM {schema}.dim_movie ORDER BY movie_id",
        "dim_genre": f"SELECT genre_id, name FROM {schema}.dim_genre ORDER BY 1",
        "dim_keyword": f"SELECT keyword_id, name FROM {schema}.dim_keyword ORDER BY 1",
        "dim_company": f"SELECT company_id, name, origin_country FROM {schema}.dim_company"
        " ORDER BY 1",
    } | {
        b: f"SELECT movie_id, {b.removeprefix('bridge_movie_')}_id FROM {schema}.{b} ORDER BY 1, 2"
        for b in BRIDGES
    }
    with connect(pg) as conn:
        return {t: conn.execute(q).fetchall() for t, q in queries.items()}  # type: ignore[arg-type]


def _quarantine(pg: PostgresSettings) -> list[tuple[Any, ...]]:
    with connect(pg) as conn:
        return conn.execute(
            "SELECT source_offset, rule, reason FROM quarantine WHERE source_topic = %s"
            " ORDER BY source_offset",
            (TOPIC,),
        ).fetchall()


def _clear_main(pg: PostgresSettings) -> None:
    with connect(pg) as conn:
        conn.execute(
            f"TRUNCATE {', '.join(BRIDGES)}, dim_movie, dim_genre, dim_keyword, dim_company"
        )
        conn.execute("DELETE FROM quarantine WHERE source_topic = %s", (TOPIC,))


def test_a_fallback_run_keeps_movies_apart_and_promotion_lands_them_as_a_replay_does(
    pg_settings: PostgresSettings, mongo_settings: MongoSettings
) -> None:
    from cinepulse_pandas_fallback.runs import promote

    n = _archive(mongo_settings, corpus(), ARRIVED)
    run = _run(pg_settings, mongo_settings, "fallback")
    assert run.movies_read == n and run.written["dim_movie"] > 20
    empty = _movies(pg_settings)
    assert all(rows == [] for rows in empty.values())  # kept apart: main untouched
    assert _quarantine(pg_settings) == []
    apart = _movies(pg_settings, "fallback")
    assert len(apart["dim_movie"]) == run.written["dim_movie"]
    assert {r[0]: r[2] for r in apart["dim_movie"]}[1] == "Newest title"
    with connect(pg_settings) as conn:
        held = conn.execute(
            "SELECT count(*) FROM fallback.quarantine WHERE run_id = %s AND source_topic = %s",
            (run.run_id, TOPIC),
        ).fetchone()
        flags = conn.execute(
            "SELECT DISTINCT source_flag::text FROM fallback.dim_movie WHERE run_id = %s",
            (run.run_id,),
        ).fetchall()
    assert held is not None and held[0] >= 10
    assert flags == [("pandas",)]

    dry = promote(pg_settings, run.run_id, by="ada", dry_run=True)
    assert _movies(pg_settings) == empty  # a dry run writes nothing
    assert dry.rows["dim_movie"] == {"inserted": len(apart["dim_movie"]), "present": 0, "older": 0}
    done = promote(pg_settings, run.run_id, by="ada")
    assert {t: c for t, c in done.rows.items() if t in (*MAIN, *BRIDGES)} == {
        t: c for t, c in dry.rows.items() if t in (*MAIN, *BRIDGES)
    }
    promoted = _movies(pg_settings)
    assert promoted == apart
    assert all(done.rows[b]["inserted"] == len(apart[b]) for b in BRIDGES)
    landed = _quarantine(pg_settings)
    assert len(landed) == held[0]
    with connect(pg_settings) as conn:
        recorded = conn.execute(
            "SELECT rows_inserted FROM fallback.promotions WHERE run_id = %s", (run.run_id,)
        ).fetchone()
    assert recorded is not None and recorded[0]["dim_movie"] == len(apart["dim_movie"])

    again = promote(pg_settings, run.run_id, by="grace")  # changes nothing
    assert all(again.rows[t]["inserted"] == 0 for t in (*MAIN, *BRIDGES, "quarantine"))
    assert again.rows["dim_movie"]["present"] == len(apart["dim_movie"])
    assert _movies(pg_settings) == promoted

    # parity: a replay of the same records (the streaming path's load over the same
    # transforms) gives exactly the same main tables and quarantine
    _clear_main(pg_settings)
    replay = _run(pg_settings, mongo_settings, "replay")
    assert replay.written["dim_movie"] == len(apart["dim_movie"])
    assert _movies(pg_settings) == promoted
    assert _quarantine(pg_settings) == landed


def test_latest_version_wins_across_extensions_runs_and_the_main_table(
    pg_settings: PostgresSettings, mongo_settings: MongoSettings
) -> None:
    """An extension replaces the run's version of a movie (a later micro-batch does the
    same); runs promoted oldest first leave the latest; a movie already equal in the main
    table is present, not rewritten, and a different one is overwritten (SCD type 1)."""
    import pandas as pd

    from cinepulse_common.warehouse import load_movies
    from cinepulse_pandas_fallback.movies import transform_movies
    from cinepulse_pandas_fallback.runs import promote

    genres = {"genres": [{"id": 18, "name": "Drama"}]}
    _archive(mongo_settings, [_movie(1, title="v1"), _movie(2, title="same")], ARRIVED)
    # movie 2 is already in the main table as the run will have it; movie 3 differs there
    with connect(pg_settings) as conn:
        docs = []
        for i, m in enumerate([_movie(2, title="same"), _movie(3, title="Spark's", **genres)]):
            value = json.dumps(m).encode()
            doc = to_document(Source(TOPIC, 1, i, b"k", None), value, ARRIVED, movie_topic=True)
            docs.append(doc[1])
        rows, _ = transform_movies(pd.DataFrame(docs), active_rules())
        load_movies(conn, list(rows.itertuples(index=False, name=None)), source_flag="spark")
    first = _run(pg_settings, mongo_settings, "fallback")
    later = ARRIVED + timedelta(hours=2)
    _archive(
        mongo_settings,
        [_movie(1, title="v2", fetched_at="2026-11-20T13:00:00Z"), _movie(3, title="fallback")],
        later,
        first=10,
    )
    extended = _run(
        pg_settings,
        mongo_settings,
        "fallback",
        window=(WINDOW[1], later + timedelta(minutes=30)),
        extend=first.run_id,
    )
    assert extended.run_id == first.run_id
    with connect(pg_settings) as conn:
        titles = conn.execute(
            "SELECT movie_id, title FROM fallback.dim_movie WHERE run_id = %s ORDER BY 1",
            (first.run_id,),
        ).fetchall()
    assert titles == [(1, "v2"), (2, "same"), (3, "fallback")]
    # a second run with a still newer version of movie 1
    latest = later + timedelta(hours=2)
    _archive(mongo_settings, [_movie(1, title="v3", fetched_at="2026-11-20T16:00:00Z")], latest, 20)
    second = _run(
        pg_settings, mongo_settings, "fallback", window=(latest, latest + timedelta(minutes=1))
    )
    done = promote(pg_settings, first.run_id, by="ada")
    # 1 new, 3 overwritten (fetched at the same time as Spark's: the same or later wins)
    assert done.rows["dim_movie"] == {"inserted": 2, "present": 1, "older": 0}
    assert done.rows["bridge_movie_genre"]["inserted"] == 3  # 1: two; 3: Thriller added
    promote(pg_settings, second.run_id, by="ada")
    with connect(pg_settings) as conn:
        main = conn.execute(
            "SELECT movie_id, title, source_flag::text FROM dim_movie ORDER BY 1"
        ).fetchall()
    assert main == [(1, "v3", "pandas"), (2, "same", "spark"), (3, "fallback", "pandas")]


def _titles_and_genres(pg: PostgresSettings) -> list[tuple[Any, ...]]:
    with connect(pg) as conn:
        return conn.execute(
            "SELECT m.movie_id, m.title, m.fetched_at,"
            " array(SELECT g.name FROM bridge_movie_genre AS b JOIN dim_genre AS g"
            "       USING (genre_id) WHERE b.movie_id = m.movie_id ORDER BY g.name)"
            " FROM dim_movie AS m ORDER BY 1"
        ).fetchall()


def test_an_older_run_promoted_after_a_newer_one_changes_nothing(
    pg_settings: PostgresSettings, mongo_settings: MongoSettings
) -> None:
    """Runs promoted newest first: the older run's version of a movie is skipped, its genres
    with it, and the counts say so ("older", not "inserted"); its other movies land."""
    from cinepulse_pandas_fallback.runs import promote

    comedy = [{"id": 35, "name": "Comedy"}]
    _archive(
        mongo_settings,
        [_movie(1, title="v2", fetched_at="2026-11-20T13:00:00Z"), _movie(2, title="only old")],
        ARRIVED,
    )
    older = _run(pg_settings, mongo_settings, "fallback")
    latest = ARRIVED + timedelta(hours=4)
    _archive(
        mongo_settings,
        [_movie(1, title="v3", fetched_at="2026-11-20T16:00:00Z", genres=comedy)],
        latest,
        first=10,
    )
    newer = _run(
        pg_settings, mongo_settings, "fallback", window=(latest, latest + timedelta(minutes=1))
    )
    promote(pg_settings, newer.run_id, by="ada")
    expected = _titles_and_genres(pg_settings)
    assert [(m, t, g) for m, t, _, g in expected] == [(1, "v3", ["Comedy"])]

    dry = promote(pg_settings, older.run_id, by="ada", dry_run=True)
    done = promote(pg_settings, older.run_id, by="ada")
    movie_tables = (*MAIN, *BRIDGES)
    assert {t: done.rows[t] for t in movie_tables} == {t: dry.rows[t] for t in movie_tables}
    # movie 1 is older than the main table's: skipped; movie 2 is new
    assert done.rows["dim_movie"] == {"inserted": 1, "present": 0, "older": 1}
    # only movie 2's lists: Drama and Thriller (new genres, new pairs); movie 1's Drama and
    # Thriller pairs from the older version are neither added nor is its Comedy removed
    assert done.rows["bridge_movie_genre"] == {"inserted": 2, "present": 0}
    assert done.rows["dim_genre"] == {"inserted": 2, "present": 0}
    assert "older, skipped" in done.table()
    after = _titles_and_genres(pg_settings)
    assert after[0] == expected[0]  # title, fetch time and genres of the newer version
    assert [(m, t, g) for m, t, _, g in after] == [
        (1, "v3", ["Comedy"]),
        (2, "only old", ["Drama", "Thriller"]),
    ]
    assert after[0][2] == datetime(2026, 11, 20, 16, tzinfo=UTC)


def test_a_movie_without_a_fetch_time_yields_to_one_with_and_never_the_reverse(
    pg_settings: PostgresSettings,
) -> None:
    """A stored row without ``fetched_at`` (loaded before migration 0013) is replaced by a
    dated version, even an old one; a version without ``fetched_at`` never replaces a dated
    row; and an older dated version neither replaces the row nor its genres."""
    from cinepulse_common.warehouse import MOVIE_COLUMNS, load_movies

    ids = {"Drama": 18, "Action": 28, "Comedy": 35, "Horror": 27, "War": 10752}

    def row(title: str, fetched_at: datetime | None, genre: str) -> tuple[Any, ...]:
        # "Old Horror" is an older name of Horror's id (27)
        genre_id = ids[genre.removeprefix("Old ")]
        values = {
            "movie_id": 7,
            "title": title,
            "adult": False,
            "fetched_at": fetched_at,
            "genres": json.dumps([{"id": genre_id, "name": genre}]),
            "keywords": "[]",
            "companies": "[]",
        }
        return tuple(values.get(c) for c in MOVIE_COLUMNS)

    def load(*rows: tuple[Any, ...]) -> dict[str, int]:
        with connect(pg_settings) as conn:
            return load_movies(conn, list(rows), source_flag="spark")

    def stored() -> tuple[Any, ...]:
        (movie,) = _titles_and_genres(pg_settings)
        return movie[1:]

    old = datetime(2026, 11, 1, tzinfo=UTC)
    new = old + timedelta(days=1)
    load(row("undated", None, "Drama"))
    assert stored() == ("undated", None, ["Drama"])
    load(row("undated again", None, "Action"))  # no time on either side: the last one wins
    assert stored() == ("undated again", None, ["Action"])
    assert load(row("old", old, "Comedy"))["dim_movie"] == 1  # any time beats none
    assert stored() == ("old", old, ["Comedy"])
    assert load(row("undated", None, "Drama"))["dim_movie"] == 0
    assert stored() == ("old", old, ["Comedy"])
    assert load(row("new", new, "Horror"))["dim_movie"] == 1
    assert stored() == ("new", new, ["Horror"])
    written = load(row("old", old, "Old Horror"))  # late, or replayed
    assert written["dim_movie"] == 0 and written["bridge_movie_genre"] == 0
    assert written["dim_genre"] == 0  # nor does the older version rename a genre
    assert stored() == ("new", new, ["Horror"])
    # the same version fetched again later: only fetched_at moves, not updated_at
    with connect(pg_settings) as conn:
        before = conn.execute("SELECT updated_at FROM dim_movie").fetchone()
    later = new + timedelta(days=1)
    assert load(row("new", later, "Horror"))["dim_movie"] == 1
    with connect(pg_settings) as conn:
        assert conn.execute("SELECT updated_at FROM dim_movie").fetchone() == before
    assert stored() == ("new", later, ["Horror"])
    # and then the version fetched between the two is older than the stored one
    assert load(row("between", new + timedelta(hours=1), "War"))["dim_movie"] == 0
    assert stored() == ("new", later, ["Horror"])
