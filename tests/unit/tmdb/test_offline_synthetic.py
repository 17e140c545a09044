"""The offline TMDB server without the TMDB sets: the seeded synthetic catalogue, the minimal
response shapes, the fallback to them, and that the fetcher's own client, discovery walk and
parser take every synthetic movie. Needs no data set (except the one test that compares the
minimal shapes with the recorded ones)."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cinepulse_common.events import parse_event
from cinepulse_common.settings import KafkaSettings, MongoSettings, PostgresSettings
from cinepulse_devstack import demo_events
from cinepulse_devstack.config import StackSettings
from cinepulse_devstack.demo import DemoOptions, is_synthetic
from cinepulse_devstack.demo import demo_events as choose_events
from cinepulse_devstack.stack import Stack
from cinepulse_devstack.tmdb_offline import (
    DEFAULT_OPENAPI,
    DatasetMissingError,
    create_app,
    load_catalogue,
    load_recorded,
    minimal_recorded,
    synthetic_rows,
)
from cinepulse_devstack.tmdb_offline import app as offline_app
from cinepulse_devstack.tmdb_offline.synthetic import (
    DETAILS_KEYS,
    DISCOVER_KEYS,
    GENRES,
    MOVIE_ID_BASE,
    SIZE,
)
from cinepulse_tmdb_fetcher.bootstrap import build_fetcher
from cinepulse_tmdb_fetcher.client import TmdbClient
from cinepulse_tmdb_fetcher.models import normalise
from cinepulse_tmdb_fetcher.settings import TmdbFetcherSettings
from tests.datasets import needs
from tests.unit.tmdb.fakes import AUTH, TOKEN, get, settings

GENRE_IDS = {g for g, _, _ in GENRES}


@pytest.fixture(scope="module")
def synthetic_app() -> Any:
    return create_app(catalogue="synthetic", max_pages=5)


@pytest.fixture
def synthetic(synthetic_app: Any) -> Any:
    with TestClient(synthetic_app) as c:
        yield c


# ---- the catalogue --------------------------------------------------------------------------


def test_the_catalogue_is_seeded_and_complete() -> None:
    rows = synthetic_rows()
    assert rows == synthetic_rows()  # the same seed, the same movies
    assert rows != synthetic_rows(seed=1)
    assert len(rows) == SIZE == 300
    ids = [int(r["id"]) for r in rows]
    assert ids == list(range(MOVIE_ID_BASE + 1, MOVIE_ID_BASE + SIZE + 1))
    assert len({r["title"] for r in rows}) == SIZE
    for r in rows:
        genres = json.loads(r["genres"])
        assert 1 <= len(genres) <= 3 and {g["id"] for g in genres} <= GENRE_IDS
        assert len(json.loads(r["keywords"])) >= 2
        assert len(json.loads(r["production_companies"])) >= 1
        assert date(1975, 1, 1) <= date.fromisoformat(r["release_date"]) <= date(2024, 12, 31)
        assert 0.0 <= float(r["vote_average"]) <= 10.0 and int(r["vote_count"]) > 0
        assert float(r["popularity"]) > 0 and 78 <= int(r["runtime"]) <= 175
    # every genre is used, and popularity has a long tail (a few hits, many small movies)
    used = Counter(g["id"] for r in rows for g in json.loads(r["genres"]))
    assert set(used) == GENRE_IDS
    popularity = sorted(float(r["popularity"]) for r in rows)
    assert popularity[-1] > 5 * popularity[len(popularity) // 2]


def test_the_minimal_shapes_are_tmdbs_fields_in_tmdbs_order() -> None:
    recorded = minimal_recorded()
    assert tuple(recorded.details_keys) == DETAILS_KEYS
    assert tuple(recorded.discover_keys) == DISCOVER_KEYS
    assert [g["id"] for g in recorded.genres["genres"]] == [g for g, _, _ in GENRES]
    assert set(recorded.credits) >= {"cast", "crew"}


@needs("tmdb-api")
def test_the_minimal_shapes_match_the_recorded_examples() -> None:
    recorded = load_recorded(DEFAULT_OPENAPI)
    minimal = minimal_recorded()
    assert minimal.details_keys == recorded.details_keys
    assert minimal.discover_keys == recorded.discover_keys
    assert {g["id"] for g in minimal.genres["genres"]} == {
        g["id"] for g in recorded.genres["genres"]
    }
    for key, value in recorded.details.items():  # the same JSON types where both have one
        mine = minimal.details[key]
        if value is not None and mine is not None:
            assert type(mine) is type(value) or {type(mine), type(value)} <= {int, float}, key


# ---- the server on it ---------------------------------------------------------------------------


def test_details_discover_and_genres_have_tmdbs_shape(synthetic: TestClient) -> None:
    movie_id = MOVIE_ID_BASE + 1
    body = get(synthetic, f"/3/movie/{movie_id}", append_to_response="keywords,credits").json()
    assert list(body)[: len(DETAILS_KEYS)] == list(DETAILS_KEYS)
    assert body["id"] == movie_id and body["keywords"]["keywords"]
    assert body["credits"] == {"cast": [], "crew": []}
    page = get(synthetic, "/3/discover/movie").json()
    assert page["total_results"] == SIZE and len(page["results"]) == 20
    assert all(list(entry) == list(DISCOVER_KEYS) for entry in page["results"])
    assert get(synthetic, "/3/genre/movie/list").json() == minimal_recorded().genres
    assert get(synthetic, "/3/movie/1").status_code == 404
    stats = synthetic.get("/__admin/stats").json()
    assert stats["catalogue"] == "synthetic" and stats["movies"] == SIZE


def fetcher_settings() -> TmdbFetcherSettings:
    return TmdbFetcherSettings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),
        postgres=PostgresSettings(dsn=SecretStr("postgresql://nobody@127.0.0.1:9/none")),
        mongo=MongoSettings(url=SecretStr("mongodb://127.0.0.1:9")),
        tmdb=settings(base_url="http://tmdb.test", token=TOKEN, page_cap=5),
    )


def test_the_fetcher_discovers_and_parses_every_synthetic_movie(synthetic_app: Any) -> None:
    """The fetcher's own discovery walk (5 pages at most per window, so it splits the
    release-date range) finds all 300 movies, and its parser takes each details body
    without a repair."""

    async def run() -> tuple[list[int], list[Any], dict[str, Any]]:
        s = fetcher_settings()
        transport = httpx.ASGITransport(app=synthetic_app)
        async with TmdbClient(s.tmdb, transport=transport) as client:
            ids = await build_fetcher(s, client, dry_run=True).discover_all()
            bodies = await asyncio.gather(*(client.movie(i) for i in ids))
            genres = await client.genres()
        return ids, bodies, genres

    ids, bodies, genres = asyncio.run(run())
    assert sorted(ids) == [int(r["id"]) for r in synthetic_rows()]
    listed = {g["id"] for g in genres["genres"]}
    for body in bodies:
        movie, repairs = normalise(body)
        assert repairs == [], (movie.id, repairs)
        assert movie.release_date is not None and movie.runtime
        assert movie.genres and {g.id for g in movie.genres} <= listed
        assert movie.keywords and movie.production_companies
        assert all(k.id > 0 for k in movie.keywords)


def test_without_the_tmdb_sets_the_server_falls_back_to_the_synthetic_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offline_app, "DEFAULT_CSV", tmp_path / "tmdb-5000" / "movies.csv")
    monkeypatch.setattr(offline_app, "DEFAULT_OPENAPI", tmp_path / "tmdb-api" / "openapi.json")
    auto = load_catalogue()
    assert (auto.name, auto.shapes, len(auto.movies)) == ("synthetic", "minimal", SIZE)
    assert "synthetic catalogue" in auto.describe()
    assert len(load_catalogue(catalogue="synthetic", synthetic_size=40).movies) == 40
    with TestClient(create_app(synthetic_size=25)) as c:
        assert c.get("/__admin/stats").json()["movies"] == 25
        assert c.get(f"/3/movie/{MOVIE_ID_BASE + 25}", headers=AUTH).status_code == 200
    # asked for the data set, or given a file: a missing file is an error, not a fallback
    with pytest.raises(DatasetMissingError):
        load_catalogue(catalogue="tmdb-5000")
    with pytest.raises(DatasetMissingError):
        load_catalogue(tmp_path / "nope.csv")
    with pytest.raises(DatasetMissingError):
        load_catalogue(openapi_json=tmp_path / "nope.json")
    with pytest.raises(ValueError, match="exclude each other"):
        load_catalogue(tmp_path / "movies.csv", catalogue="synthetic")
    with pytest.raises(ValueError, match="unknown catalogue"):
        load_catalogue(catalogue="imdb")


def test_the_cli_exits_2_on_an_unknown_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        offline_app.main(["--catalogue", "imdb"])
    assert exit_.value.code == 2


# ---- the demo: the synthetic events name the synthetic catalogue's movies ---------------------


def test_synthetic_events_rate_movies_of_the_synthetic_catalogue() -> None:
    events = demo_events.synthetic_events(2000, seed=7)
    again = demo_events.synthetic_events(2000, seed=7)  # seeded (only the clock differs)
    assert [(e["event_id"], e["movie_id"]) for e in events] == [
        (e["event_id"], e["movie_id"]) for e in again
    ]
    ids = set(demo_events.synthetic_movie_ids())
    assert ids == {int(r["id"]) for r in synthetic_rows()}
    assert {e["movie_id"] for e in events} <= ids
    assert {e["event_type"] for e in events} == {"watch", "rate", "comment", "click"}
    for e in events:
        parse_event(e)  # the gateway's own validation
    # a pattern to learn: users mostly pick (and rate higher) movies of their genres
    genres = {m.id: m.genres for m in demo_events.catalogue_movies()}
    tastes = demo_events.Tastes(random.Random(7))  # what synthetic_events(seed=7) drew first
    liked = [
        bool(genres[e["movie_id"]] & tastes.favourites[int(e["user_id"].rsplit("-", 1)[1])])
        for e in events
    ]
    assert sum(liked) / len(liked) > 0.7
    ratings: dict[bool, list[float]] = {True: [], False: []}
    for hit, e in zip(liked, events, strict=True):
        if e["event_type"] == "rate":
            ratings[hit].append(e["payload"]["rating"])
    mean = {hit: sum(r) / len(r) for hit, r in ratings.items()}
    assert mean[True] > mean[False] + 1.0


def test_the_demo_serves_the_catalogue_its_events_name(tmp_path: Path) -> None:
    source, _ = choose_events(DemoOptions(synthetic=10))
    assert is_synthetic(source) and "synthetic TMDB catalogue" in source
    tmdb = Stack(StackSettings(root=tmp_path)).tmdb_offline
    assert tmdb.args()[-2:] == ["--catalogue", "auto"]
    tmdb.catalogue = "synthetic"
    assert tmdb.args()[-2:] == ["--catalogue", "synthetic"]
