"""Serving without a database: a hand-made model version in memory (known users, cold
start, genres, exclusions, similar movies, the precomputed and scored paths), the artefact's
round trip through bytes, and the HTTP layer (k bounds as 422 naming the field, 404s,
strategies, readiness) with the version swapped in by hand."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import scipy.sparse as sp
from fastapi.testclient import TestClient

from cinepulse_common.settings import PostgresSettings
from cinepulse_recommender.app import create_app
from cinepulse_recommender.artefact import Artefact
from cinepulse_recommender.recommend import (
    MODEL,
    POPULAR,
    POPULAR_IN_GENRE,
    PRECOMPUTED,
    SCORED,
    Popularity,
    Recommender,
    UnknownGenreError,
    UnknownMovieError,
)
from cinepulse_recommender.settings import RecommenderSettings

NO_DB = PostgresSettings(dsn="postgresql://u:p@127.0.0.1:9/none?connect_timeout=1")

MOVIES = [101, 102, 103, 104, 105, 106]
GENRES = [["Drama"], ["Drama", "Comedy"], ["Comedy"], ["Action"], ["Action"], ["Drama"]]


def artefact() -> Artefact:
    """Two users in a 2-d space: 'alice' likes the first axis (dramas), 'bob' the second.
    Movie 106 is not a candidate (no training pair)."""
    item = np.array(
        [[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.1, 0.9], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32
    )
    seen = sp.csr_matrix(
        np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0]], dtype=np.float32)
    )  # alice saw 101, bob saw 105
    return Artefact(
        user_ids=np.array(["alice", "bob"]),
        item_ids=np.array(MOVIES, dtype=np.int64),
        user_factors=np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
        item_factors=item,
        item_bias=np.zeros(6, dtype=np.float32),
        candidates=np.array([True, True, True, True, True, False]),
        popularity=np.array([5.0, 1.0, 4.0, 3.0, 2.0, 0.0]),
        seen=seen,
        trained=seen,
        titles=[f"Movie {m}" for m in MOVIES],
        genres=GENRES,
        meta={"trained_at": 1_700_000_000.0},
    )


@pytest.fixture
def rec() -> Recommender:
    return Recommender.from_artefact("v1", artefact(), top_n=3)


def ids(answer: object) -> list[int]:
    return [i.movie_id for i in answer.items]  # type: ignore[attr-defined]


def test_known_user_gets_the_model_without_seen_items(rec: Recommender) -> None:
    a = rec.recommend("alice", 2)
    assert (a.strategy, a.path) == (MODEL, PRECOMPUTED)
    assert ids(a) == [102, 103]  # 101 seen, 106 not a candidate
    assert [i.title for i in a.items] == ["Movie 102", "Movie 103"]
    # beyond the precomputed list (top_n = 3): scored on the fly, same order
    b = rec.recommend("alice", 4)
    assert (b.strategy, b.path) == (MODEL, SCORED)
    assert ids(b) == [102, 103, 104, 105]
    # seen items allowed: scored, 101 first
    c = rec.recommend("alice", 2, exclude_seen=False)
    assert (c.path, ids(c)) == (SCORED, [101, 102])


def test_genre_filter_for_known_users(rec: Recommender) -> None:
    a = rec.recommend("bob", 3, genre="action")  # case-insensitive
    assert (a.strategy, ids(a)) == (MODEL, [104])  # 105 seen
    assert rec.recommend("alice", 1, genre="Comedy").items[0].movie_id == 102
    with pytest.raises(UnknownGenreError):
        rec.recommend("alice", 1, genre="Western")


def test_cold_start_users_get_popular_movies(rec: Recommender) -> None:
    a = rec.recommend("newcomer", 3)
    assert (a.strategy, ids(a)) == (POPULAR, [101, 103, 104])
    assert [i.score for i in a.items] == [5.0, 4.0, 3.0]
    b = rec.recommend("newcomer", 5, genre="Drama")
    assert (b.strategy, ids(b)) == (POPULAR_IN_GENRE, [101, 102])  # 106: nobody


def test_similar_movies_by_cosine_and_unknown_movies(rec: Recommender) -> None:
    a = rec.similar(101, 2)
    assert (a.strategy, ids(a)) == (MODEL, [102, 103])  # itself and 106 left out
    assert a.items[0].score == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    with pytest.raises(UnknownMovieError):
        rec.similar(999, 2)


def test_popularity_only_without_a_model() -> None:
    pop = Popularity(
        item_ids=np.array([1, 2, 3], dtype=np.int64),
        popularity=np.array([1.0, 3.0, 2.0]),
        titles=["A", None, "C"],
        genres=[["Drama"], ["Comedy"], ["Drama"]],
    )
    rec = Recommender(None, None, pop)
    assert ids(rec.recommend("anyone", 10)) == [2, 3, 1]
    s = rec.similar(1, 5)
    assert (s.strategy, ids(s)) == (POPULAR_IN_GENRE, [3])


def test_artefact_round_trips_through_bytes() -> None:
    a = artefact()
    b = Artefact.from_bytes(a.to_bytes())
    assert b.user_ids.tolist() == ["alice", "bob"]
    assert b.item_ids.tolist() == MOVIES
    assert np.array_equal(b.item_factors, a.item_factors)
    assert (b.seen != a.seen).nnz == 0
    assert b.genres == GENRES
    assert b.meta["trained_at"] == 1_700_000_000.0
    with pytest.raises(ValueError, match="Object arrays cannot be loaded"):
        # an artefact carrying pickled objects is refused, not executed
        import io

        buf = io.BytesIO()
        np.savez(buf, meta=np.array([object()], dtype=object))
        Artefact.from_bytes(buf.getvalue())


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = RecommenderSettings(postgres=NO_DB, readiness_timeout_s=0.5, registry_timeout_s=0.5)
    app = create_app(settings, poll=False)
    with TestClient(app) as c:
        yield c


def test_no_model_and_no_database_is_503_and_not_ready(client: TestClient) -> None:
    r = client.get("/api/recommendations", params={"user_id": "alice"})
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["model"].startswith("error")
    assert client.get("/healthz").status_code == 200


def test_http_answers_carry_strategy_and_version(client: TestClient) -> None:
    client.app.state.service.swap(Recommender.from_artefact("v1", artefact(), top_n=3))  # type: ignore[attr-defined]
    r = client.get("/api/recommendations", params={"user_id": "alice", "k": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["strategy"] == "model" and body["model_version"] == "v1"
    assert [i["movie_id"] for i in body["items"]] == [102, 103]
    cold = client.get("/api/recommendations", params={"user_id": "x", "genre": "Action"}).json()
    assert (cold["strategy"], [i["movie_id"] for i in cold["items"]]) == (
        "popular_in_genre",
        [104, 105],
    )
    similar = client.get("/api/movies/101/similar", params={"k": 1}).json()
    assert similar["items"][0]["movie_id"] == 102 and similar["model_version"] == "v1"
    missing = client.get("/api/movies/999/similar")
    assert missing.status_code == 404 and "unknown movie 999" in missing.json()["detail"]
    genre = client.get("/api/recommendations", params={"user_id": "alice", "genre": "Western"})
    assert genre.status_code == 404 and "Western" in genre.json()["detail"]
    metrics = client.get("/metrics").text
    assert 'cinepulse_recommender_model_info{version="v1"} 1.0' in metrics
    assert 'strategy="popular_in_genre"' in metrics
    assert "cinepulse_recommender_model_age_seconds" in metrics


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/recommendations", {"user_id": "a", "k": 0}, "k"),
        ("/api/recommendations", {"user_id": "a", "k": 101}, "k"),
        ("/api/recommendations", {"user_id": "a", "k": "ten"}, "k"),
        ("/api/recommendations", {}, "user_id"),
        ("/api/recommendations", {"user_id": "a", "exclude_seen": "maybe"}, "exclude_seen"),
        ("/api/movies/1/similar", {"k": 500}, "k"),
        ("/api/movies/0/similar", {}, "movie_id"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    client: TestClient, path: str, params: dict[str, object], field: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 422
    [detail] = r.json()["detail"]
    assert detail["field"] == field and detail["reason"] and detail["type"]
