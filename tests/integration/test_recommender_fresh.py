"""Fresh recommendations against the live PostgreSQL: a model is trained on a small synthetic
catalogue (three clusters of movies, users who keep to one) and published; then facts land
for a user (ratings and completed watches of another cluster, through the shared load step
as the Spark stream writes them) and that user's ``/api/recommendations`` changes once the
history cache has expired, without retraining. Whichever family is served: the test forces
each one through the trainer's gate."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cinepulse_common.access import ApiAuthSettings
from cinepulse_common.postgres import connect
from cinepulse_common.settings import PostgresSettings
from cinepulse_common.warehouse import EVENT_COLUMNS, MOVIE_COLUMNS, load_events, load_movies
from cinepulse_recommender import registry, training
from cinepulse_recommender.app import create_app
from cinepulse_recommender.settings import (
    AlsSettings,
    EaseSettings,
    HistorySettings,
    ModelSettings,
    RecommenderSettings,
    Rp3Settings,
)
from cinepulse_recommender.training import FAMILIES, run_training

pytestmark = pytest.mark.integration

CLUSTERS = {"Drama": range(1001, 1021), "Comedy": range(2001, 2021), "Action": range(3001, 3021)}
USERS_PER_CLUSTER = 25
USER = "fresh-1"  # keeps to dramas until the test makes them watch action movies
NEWCOMER = "fresh-new"  # no event before the model was trained
TTL_S = 0.5
T0 = datetime(2026, 1, 1, tzinfo=UTC)
AUTH = {"keys": {"explorer": "internal-key"}, "roles": {"explorer": "internal"}}


def movie(movie_id: int, genre: str) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "movie_id": movie_id,
        "title": f"{genre} {movie_id}",
        "original_title": f"{genre} {movie_id}",
        "genres": json.dumps([{"id": hash(genre) % 1000, "name": genre}]),
        "keywords": "[]",
        "companies": "[]",
        "adult": False,
    }
    return tuple(values.get(c) for c in MOVIE_COLUMNS)


def event(user: str, movie_id: int, at: datetime, kind: str = "rate") -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "event_type": kind,
        "user_id": user,
        "movie_id": movie_id,
        "date_key": at.year * 10_000 + at.month * 100 + at.day,
        "occurred_at": at,
        "received_at": at,
        "source_topic": "test",
        "source_partition": 0,
        "source_offset": 0,
        "payload": "{}",
    }
    if kind == "rate":
        values["rating"] = 5.0
    else:  # a completed watch
        values |= {
            "position_seconds": 6000,
            "duration_seconds": 6000,
            "completion_ratio": 1,
            "completed": True,
        }
    return tuple(values.get(c) for c in EVENT_COLUMNS)


def land(pg: PostgresSettings, rows: list[tuple[Any, ...]]) -> None:
    with connect(pg) as conn, conn.transaction():
        load_events(conn, rows, source_flag="test")


def fill(pg: PostgresSettings) -> None:
    """Each synthetic user rates 10 movies of their cluster (and 1 of another), one a day."""
    with connect(pg) as conn, conn.transaction():
        load_movies(
            conn,
            [movie(m, g) for g, ms in CLUSTERS.items() for m in ms],
            source_flag="test",
        )
    rows = []
    for c, (genre, movies) in enumerate(CLUSTERS.items()):
        others = [m for g, ms in CLUSTERS.items() if g != genre for m in ms]
        for n in range(USERS_PER_CLUSTER):
            user = f"{genre.lower()}-{n}"
            picks = [movies[(n * 3 + j) % len(movies)] for j in range(10)]
            picks.append(others[(n * 7 + c) % len(others)])
            rows += [event(user, m, T0 + timedelta(days=d)) for d, m in enumerate(picks)]
    rows += [event(USER, m, T0 + timedelta(days=d)) for d, m in enumerate(CLUSTERS["Drama"][:8])]
    land(pg, rows)


def settings(pg: PostgresSettings) -> RecommenderSettings:
    return RecommenderSettings(
        postgres=pg,
        model=ModelSettings(epochs=20, tune_epochs=False, item_features=["genres"]),
        als=AlsSettings(tune=False, factors=3, regularization=0.1, alpha=10.0, iterations=30),
        ease=EaseSettings(tune=False, lam=10.0),
        rp3beta=Rp3Settings(tune=False, neighbours=20),
        history=HistorySettings(ttl_s=TTL_S),
        auth=ApiAuthSettings.model_validate(AUTH),
    )


def answer(client: TestClient, user: str) -> dict[str, Any]:
    r = client.get("/api/recommendations", params={"user_id": user, "k": 10})
    assert r.status_code == 200, r.text
    return r.json()


def movies(body: dict[str, Any]) -> list[int]:
    return [i["movie_id"] for i in body["items"]]


@pytest.mark.parametrize("family", FAMILIES)
def test_new_events_change_recommendations_without_retraining(
    family: str, pg_settings: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(pg_settings)
    # the family under test is served, whatever the candidates' scores
    monkeypatch.setattr(training, "gate", lambda _chosen, _results, _k: (family, "forced"))
    s = settings(pg_settings)
    outcome = run_training(s, progress=lambda _m: None)
    assert outcome.published and outcome.metrics["served"]["family"] == family, outcome.metrics
    action = list(CLUSTERS["Action"])
    with TestClient(create_app(s, poll=False)) as client:
        client.headers["X-API-Key"] = "internal-key"
        before = answer(client, USER)
        assert (before["strategy"], before["model_version"]) == ("model", outcome.version)
        assert not set(movies(before)) & set(CLUSTERS["Drama"][:8])  # seen: left out
        assert answer(client, NEWCOMER)["strategy"] == "popular"

        # the user watches and rates action movies; a newcomer rates two; Spark lands them
        now = datetime.now(UTC)
        watched = action[:10]
        land(
            pg_settings,
            [event(USER, m, now, kind) for m in watched for kind in ("rate", "watch")]
            + [event(NEWCOMER, m, now) for m in action[:2]],
        )
        time.sleep(TTL_S + 0.1)  # the cached history expires
        after = answer(client, USER)
        assert (after["strategy"], after["model_version"]) == ("model", outcome.version)
        assert movies(after) != movies(before), (before, after)
        # exclude-seen uses the fresh history too
        assert not set(movies(after)) & set(watched + list(CLUSTERS["Drama"][:8]))
        if family != "popularity":  # a model of tastes moves towards action movies
            gained = len(set(movies(after)) & set(action)) - len(set(movies(before)) & set(action))
            assert gained >= 3, (family, str(movies(before)), str(movies(after)))
        newcomer = answer(client, NEWCOMER)
        assert newcomer["strategy"] == "model" and not set(movies(newcomer)) & set(action[:2])
        metrics = client.get("/metrics").text
        assert 'path="fresh"' in metrics
        assert 'cinepulse_recommender_history_reads_total{outcome="read"}' in metrics
    with connect(pg_settings) as conn:  # nothing was retrained
        assert registry.newest_published(conn) == outcome.version
