"""MovieLens-small and the TMDB 3,000-movie set read into warehouse rows (the real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cinepulse_common.warehouse import EVENT_COLUMNS, MOVIE_COLUMNS
from cinepulse_devstack.movielens import MovieLensMissingError, read_movielens
from tests.datasets import needs

pytestmark = [needs("movielens-small"), needs("tmdb-5000")]

EV = {c: i for i, c in enumerate(EVENT_COLUMNS)}
MV = {c: i for i, c in enumerate(MOVIE_COLUMNS)}


def test_full_set_counts() -> None:
    data = read_movielens()
    assert len(data.movies) == 3000
    # 57,578 ratings fall on TMDB-5000 movies; one user rated two MovieLens ids that map to
    # the same TMDB movie, and only the first of the pair is kept
    assert len(data.ratings) == 57_577
    assert data.users == 610
    ids = [r[EV["event_id"]] for r in data.ratings]
    assert len(set(ids)) == len(ids)


def test_rows_are_modelled_rate_events() -> None:
    data = read_movielens(users=20)
    movie_ids = {m[MV["movie_id"]] for m in data.movies}
    for r in data.ratings:
        assert r[EV["event_type"]] == "rate"
        assert r[EV["user_id"]].startswith("ml-")
        assert int(r[EV["user_id"]][3:]) <= 20
        assert r[EV["movie_id"]] in movie_ids
        assert 0.5 <= r[EV["rating"]] <= 5.0
        at = r[EV["occurred_at"]]
        assert r[EV["date_key"]] == int(at.strftime("%Y%m%d"))
        assert json.loads(r[EV["payload"]]) == {"rating": r[EV["rating"]]}
    # the same file read twice gives the same ids (loading twice writes nothing twice)
    again = read_movielens(users=20)
    assert [r[EV["event_id"]] for r in again.ratings] == [r[EV["event_id"]] for r in data.ratings]


def test_movie_rows_carry_lists() -> None:
    data = read_movielens(users=1)
    avatar = next(m for m in data.movies if m[MV["movie_id"]] == 19995)
    assert avatar[MV["title"]] == "Avatar"
    assert {g["name"] for g in json.loads(avatar[MV["genres"]])} >= {"Action", "Adventure"}
    assert json.loads(avatar[MV["keywords"]])
    assert avatar[MV["release_date"]].year == 2009


def test_missing_files_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(MovieLensMissingError, match=r"tmdb_5000_movies\.csv"):
        read_movielens(tmp_path)
