"""The recommender on real data in a real, migrated PostgreSQL: MovieLens-small (the users
with the lowest ids, for time) loaded into the warehouse through the shared load step.

* training beats popularity on the held-out period (NDCG@10) and records every candidate in
  ``recsys.models``; a better model is published, a worse one rejected (CLI and library); a
  model refitted on every pair cannot be compared on pairs it has seen;
* serving through the real app: known users, cold start, genres, similar movies, bad input,
  404s; before any model is published, popularity from the facts; who may read which user's
  recommendations (the api's keys, roles and user tokens), on real data;
* a hot swap under concurrent load, in a real server process (keyed like the api): every
  request answered 200, the answers move to the new version.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as settings_
from schemathesis import GenerationMode

from cinepulse_common.access import ApiAuthSettings, sign_user_token
from cinepulse_common.postgres import connect
from cinepulse_common.read_limits import ReadRateLimitSettings
from cinepulse_common.settings import PostgresSettings
from cinepulse_devstack import Stack
from cinepulse_devstack.movielens import MovieLens, load_movielens, read_movielens
from cinepulse_recommender import registry
from cinepulse_recommender.app import create_app
from cinepulse_recommender.settings import (
    AlsSettings,
    EaseSettings,
    ModelSettings,
    RecommenderSettings,
    Rp3Settings,
)
from cinepulse_recommender.training import run_training
from tests.integration.conftest import _create_db as create_db
from tests.integration.fuzzing import FUZZ_CHECKS
from tests.integration.services import ServiceProcess, free_port, serve_in_thread, service_env

pytestmark = pytest.mark.integration

#: MovieLens users 1..USERS: ~27k ratings, enough for the model to beat popularity clearly
USERS = 300
#: the api's key set, as the chart gives it to the recommender: an internal client (the
#: explorer) and a frontend
SECRET = "t" * 32
AUTH = {
    "keys": {"explorer": "internal-key", "web": "frontend-key"},
    "roles": {"explorer": "internal", "web": "frontend"},
    "user_token_secret": SECRET,
}
INTERNAL = {"X-API-Key": "internal-key"}


@cache
def movielens() -> MovieLens:
    return read_movielens(users=USERS)


def fill(pg: PostgresSettings) -> None:
    with connect(pg) as conn:
        load_movielens(conn, movielens())


def settings(pg: PostgresSettings, **model: object) -> RecommenderSettings:
    """Fast settings: no tuning, genres as the only tag features."""
    base: dict[str, object] = {"epochs": 15, "tune_epochs": False, "item_features": ["genres"]}
    return RecommenderSettings(
        postgres=pg,
        model=ModelSettings.model_validate(base | model),
        als=AlsSettings(tune=False),
        ease=EaseSettings(tune=False),
        rp3beta=Rp3Settings(tune=False),
        auth=ApiAuthSettings.model_validate(AUTH),
    )


def weak(pg: PostgresSettings) -> RecommenderSettings:
    """Deliberately poor candidates (2 components, 1 epoch or iteration, no item models), the
    split model served (no refit), so a later run can be compared on its held-out pairs."""
    s = settings(pg, no_components=2, epochs=1)
    return s.model_copy(
        update={
            "als": AlsSettings(tune=False, factors=2, iterations=1),
            "ease": EaseSettings(enabled=False),
            "rp3beta": Rp3Settings(enabled=False),
            "evaluation": s.evaluation.model_copy(update={"refit": False}),
        }
    )


def quiet(_message: str) -> None:
    pass


def test_training_beats_popularity_publishes_better_and_rejects_worse(
    pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    fill(pg_settings)
    first = run_training(weak(pg_settings), progress=quiet)
    assert first.published and first.reason == "first model: nothing published yet"
    assert first.metrics["served"]["refit"] is False
    assert first.metrics["skipped"] == [
        {"family": "rp3beta", "reason": "disabled (rp3beta.enabled false)"},
        {"family": "ease", "reason": "disabled (ease.enabled false)"},
        {"family": "blend", "reason": "needs a factor model (ALS, LightFM) and an item model"},
    ]

    # the CLI, as the Airflow Job runs it: exit 0, progress on stderr, one JSON line on stdout
    env = service_env(
        CINEPULSE_POSTGRES__DSN=pg_settings.dsn.get_secret_value(),
        CINEPULSE_MODEL__EPOCHS="15",
        CINEPULSE_MODEL__TUNE_EPOCHS="false",
        CINEPULSE_MODEL__ITEM_FEATURES='["genres"]',
        CINEPULSE_ALS__TUNE="false",
        CINEPULSE_EASE__TUNE="false",
        CINEPULSE_RP3BETA__TUNE="false",
    )
    cli = subprocess.run(
        [sys.executable, "-m", "cinepulse_recommender", "train"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    [line] = cli.stdout.splitlines()
    strong = json.loads(line)
    assert strong["status"] == "published", strong
    assert strong["reason"].startswith("ndcg@10 ") and first.version in strong["reason"]
    assert "LightFM" in cli.stderr and "EASE^R" in cli.stderr and "served: " in cli.stderr
    # the model beats popularity on the held-out period, clearly, and never loses to ALS
    assert strong["ndcg@10"] > 1.1 * strong["popularity_ndcg@10"], strong
    assert strong["ndcg@10"] >= strong["als_ndcg@10"], strong
    assert set(strong["candidates"]) == {"popularity", "als", "lightfm", "rp3beta", "ease", "blend"}
    assert strong["candidates"][strong["served"]]["ndcg@10"] == strong["ndcg@10"]

    # the published model was refitted on every pair: on the same data, every held-out pair
    # of the next run is one it trained on, so nothing is left to compare on: rejected
    again = run_training(weak(pg_settings), progress=quiet)
    assert not again.published
    assert again.reason == (
        f"no held-out pairs left that model {strong['version']} was not trained on"
    )
    comparison = again.metrics["published_comparison"]
    assert comparison["version"] == strong["version"]
    assert comparison["dropped_pairs"] == again.metrics["split"]["relevant_pairs"]

    with connect(pg_settings) as conn:
        assert registry.newest_published(conn) == strong["version"]
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                """SELECT version, status, reason, published_at IS NOT NULL, data_from, data_to,
                          n_users, n_items, n_interactions, params, metrics,
                          artefact, artefact_sha256
                   FROM recsys.models"""
            ).fetchall()
        }
        span = conn.execute(
            "SELECT min(occurred_at), max(occurred_at), count(*) FROM fact_rating"
        ).fetchone()
    assert span is not None
    first_rating, last_rating, ratings = span
    assert {v: r[0] for v, r in rows.items()} == {
        first.version: "published",
        strong["version"]: "published",
        again.version: "rejected",
    }
    _, reason, published, data_from, data_to, users, items, pairs, params, metrics, blob, sha = (
        rows[strong["version"]]
    )
    assert published and reason == strong["reason"]
    assert (data_from, data_to) == (first_rating, last_rating)
    assert users == USERS and pairs == ratings and 0 < items <= 3000
    assert params["lightfm"]["epochs"] == 15 and params["lightfm"]["loss"] == "warp"
    assert params["ease"]["lam"] == 100.0 and params["served"] == strong["served"]
    assert set(params) >= {"lightfm", "als", "ease", "weights", "evaluation", "window"}
    # served: refitted on every pair, its split model's held-out score recorded
    assert metrics["served"]["refit_train_pairs"] == pairs > metrics["split"]["train_pairs"]
    assert metrics["served"]["split_ndcg@10"] == strong["ndcg@10"]
    for name in ("model", "popularity", "als"):
        assert set(metrics[name]) >= {"precision@10", "recall@10", "ndcg@10", "users"}
        assert metrics[name]["users"] == metrics["split"]["users_evaluated"]
    assert metrics["ratios"]["ndcg@10_vs_popularity"] > 1.1
    assert hashlib.sha256(bytes(blob)).hexdigest() == sha

    listed = subprocess.run(
        [sys.executable, "-m", "cinepulse_recommender", "models", "--limit", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    lines = [json.loads(x) for x in listed.stdout.splitlines()]
    assert [x["version"] for x in lines] == [again.version, strong["version"]]
    assert lines[0]["status"] == "rejected" and lines[1]["ndcg@10"] == strong["ndcg@10"]


# --- serving ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served_db(stack: Stack, migrated_template: str) -> Iterator[PostgresSettings]:
    """One database for the serving tests: MovieLens loaded, one model published."""
    for dsn in create_db(stack, migrated_template):
        pg = PostgresSettings(dsn=dsn)
        fill(pg)
        assert run_training(settings(pg), progress=quiet).published
        yield pg


def test_serving_known_cold_start_genre_similar_and_bad_input(
    served_db: PostgresSettings,
) -> None:
    with connect(served_db) as conn:
        version = registry.newest_published(conn)
        seen = {
            int(m)
            for (m,) in conn.execute("SELECT movie_id FROM fact_rating WHERE user_id = 'ml-1'")
        }
        comedies = {
            int(m)
            for (m,) in conn.execute(
                "SELECT movie_id FROM bridge_movie_genre JOIN dim_genre USING (genre_id) "
                "WHERE name = 'Comedy'"
            )
        }
        top = conn.execute(
            "SELECT movie_id FROM fact_rating GROUP BY movie_id ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    assert top is not None
    top_movie = int(top[0])
    app = create_app(settings(served_db), poll=False)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        client.headers.update(INTERNAL)

        known = client.get("/api/recommendations", params={"user_id": "ml-1", "k": 20}).json()
        assert (known["strategy"], known["model_version"]) == ("model", version)
        got = [i["movie_id"] for i in known["items"]]
        assert len(got) == 20 == len(set(got)) and not set(got) & seen
        assert all(i["title"] for i in known["items"])
        scores = [i["score"] for i in known["items"]]
        assert scores == sorted(scores, reverse=True)

        with_seen = client.get(
            "/api/recommendations", params={"user_id": "ml-1", "exclude_seen": "false"}
        ).json()
        assert (
            with_seen["strategy"] == "model"
            and set(i["movie_id"] for i in with_seen["items"]) & seen
        )  # this user's favourites come back when allowed

        comedy = client.get(
            "/api/recommendations", params={"user_id": "ml-1", "genre": "comedy", "k": 15}
        ).json()
        assert comedy["strategy"] == "model" and len(comedy["items"]) == 15
        assert {i["movie_id"] for i in comedy["items"]} <= comedies - seen

        cold = client.get("/api/recommendations", params={"user_id": "ml-new", "k": 5}).json()
        assert (cold["strategy"], cold["model_version"]) == ("popular", version)
        assert cold["items"][0]["movie_id"] == top_movie
        cold_genre = client.get(
            "/api/recommendations", params={"user_id": "ml-new", "genre": "Comedy"}
        ).json()
        assert cold_genre["strategy"] == "popular_in_genre"
        assert {i["movie_id"] for i in cold_genre["items"]} <= comedies

        similar = client.get(f"/api/movies/{top_movie}/similar", params={"k": 5}).json()
        assert similar["strategy"] == "model" and len(similar["items"]) == 5
        assert top_movie not in {i["movie_id"] for i in similar["items"]}

        r = client.get("/api/movies/999999999/similar")
        assert r.status_code == 404 and "unknown movie 999999999" in r.json()["detail"]
        r = client.get("/api/recommendations", params={"user_id": "ml-1", "genre": "Nope"})
        assert r.status_code == 404 and "unknown genre" in r.json()["detail"]
        r = client.get("/api/recommendations", params={"user_id": "ml-1", "k": 1000})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "k"

        text = client.get("/metrics").text
        assert f'cinepulse_recommender_model_info{{version="{version}"}} 1.0' in text
        assert 'strategy="popular_in_genre"' in text and 'path="precomputed"' in text


def test_who_reads_which_users_recommendations(served_db: PostgresSettings) -> None:
    """On real data: ml-1's recommendations with and without what ml-1 watched differ, yet a
    refused caller gets the same answer for both."""

    def recs(client: TestClient, headers: dict[str, str], **params: object) -> httpx.Response:
        return client.get(
            "/api/recommendations", params={"user_id": "ml-1", "k": 10, **params}, headers=headers
        )

    mine = {"X-API-Key": "frontend-key", "X-User-Token": sign_user_token(SECRET, "ml-1")}
    theirs = {"X-API-Key": "frontend-key", "X-User-Token": sign_user_token(SECRET, "ml-2")}
    with TestClient(create_app(settings(served_db), poll=False)) as client:
        internal = recs(client, INTERNAL)
        assert internal.status_code == 200
        own = recs(client, mine)
        assert own.status_code == 200 and own.json()["items"] == internal.json()["items"]
        with_seen = recs(client, mine, exclude_seen="false")
        assert with_seen.status_code == 200 and with_seen.json()["items"] != own.json()["items"]
        for headers, status in [
            ({}, 401),
            ({"X-API-Key": "nope"}, 401),
            ({"X-API-Key": "frontend-key"}, 401),
            (theirs, 403),
        ]:
            a, b = (recs(client, headers, exclude_seen=v) for v in ("true", "false"))
            assert a.status_code == status, (headers, a.text)
            assert (a.status_code, a.content) == (b.status_code, b.content)
            assert "items" not in a.text
        # similar movies, health and metrics stay open
        assert client.get("/api/movies/1/similar").status_code in (200, 404)
        assert client.get("/readyz").status_code == 200


@pytest.fixture(scope="module")
def recommender_schema(served_db: PostgresSettings) -> Iterator[Any]:
    """The recommender over the served model, in a thread: its OpenAPI for the fuzzing."""
    # limits the fuzzing never reaches (every caller is 127.0.0.1): counted, never a 429
    high = ReadRateLimitSettings(per_client="1000000/minute", anonymous="1000000/minute")
    fuzzed = settings(served_db).model_copy(update={"docs_enabled": True, "rate_limit": high})
    app = create_app(fuzzed, poll=False)
    with serve_in_thread(app, "recommender-under-fuzzing") as url:
        spec = schemathesis.openapi.from_url(url + "/openapi.json").include(method="GET")
        # valid and invalid parameters; the credentials are the test's own, per role
        spec.config.generation.update(
            modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
            with_security_parameters=False,
        )
        spec.config.update(base_url=url)
        yield spec


recommender_fuzzing = schemathesis.pytest.from_fixture("recommender_schema")
#: keys of each role (issue 20): an internal client, a frontend client for user ml-1, nobody
CALLERS = {
    "internal": lambda: INTERNAL,
    "frontend": lambda: {
        "X-API-Key": "frontend-key",
        "X-User-Token": sign_user_token(SECRET, "ml-1"),
    },
    "anonymous": dict,
}


@recommender_fuzzing.parametrize()
@settings_(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_the_recommender_as_each_role(case: Any) -> None:
    """No 5xx, documented answers, invalid input refused, and ``ignored_auth``: every
    operation declaring a credential refuses a request without it or with a wrong one."""
    for headers in CALLERS.values():  # the same generated case, as each role in turn
        case.call_and_validate(
            headers=headers(),
            checks=FUZZ_CHECKS,
            timeout=10,
        )


def test_before_any_model_popularity_comes_from_the_facts(pg_settings: PostgresSettings) -> None:
    fill(pg_settings)
    with connect(pg_settings) as conn:
        top = conn.execute(
            """SELECT movie_id FROM fact_rating GROUP BY movie_id
               ORDER BY count(DISTINCT user_id) DESC, movie_id LIMIT 3"""
        ).fetchall()
    with TestClient(create_app(settings(pg_settings), poll=False)) as client:
        assert client.get("/readyz").status_code == 200  # popularity counts as loaded
        client.headers.update(INTERNAL)
        body = client.get("/api/recommendations", params={"user_id": "ml-1", "k": 3}).json()
        assert (body["strategy"], body["model_version"]) == ("popular", None)
        assert [i["movie_id"] for i in body["items"]] == [int(m) for (m,) in top]
        similar = client.get(f"/api/movies/{top[0][0]}/similar").json()
        assert similar["strategy"] == "popular_in_genre" and similar["items"]
        assert 'cinepulse_recommender_model_info{version="none"} 1.0' in client.get("/metrics").text


async def _hammer(
    url: str, stop: asyncio.Event, workers: int
) -> tuple[list[int], list[str], list[str]]:
    """Requests from ``workers`` concurrent clients until ``stop``; statuses, the versions
    that answered (in order of completion) and transport errors."""
    statuses: list[int] = []
    versions: list[str] = []
    errors: list[str] = []

    async def worker(n: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=INTERNAL, timeout=10) as client:
            i = 0
            while not stop.is_set():
                user = f"ml-{1 + (n * 37 + i) % USERS}" if i % 4 else f"cold-{n}"
                i += 1
                try:
                    r = await client.get("/api/recommendations", params={"user_id": user})
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                    continue
                statuses.append(r.status_code)
                if r.status_code == 200:
                    versions.append(r.json()["model_version"])

    await asyncio.gather(*(worker(n) for n in range(workers)))
    return statuses, versions, errors


def test_hot_swap_under_load_loses_no_request(served_db: PostgresSettings, tmp_path: Path) -> None:
    with connect(served_db) as conn:
        v1 = registry.newest_published(conn)
    port = free_port()
    server = ServiceProcess(
        "cinepulse_recommender",
        service_env(
            CINEPULSE_POSTGRES__DSN=served_db.dsn.get_secret_value(),
            CINEPULSE_POLL_INTERVAL_S="0.2",
            CINEPULSE_LOG_LEVEL="WARNING",
            CINEPULSE_AUTH__KEYS=json.dumps(AUTH["keys"]),
            CINEPULSE_AUTH__ROLES=json.dumps(AUTH["roles"]),
            # 16 workers far above a client's default 1,200 a minute: the swap is measured
            CINEPULSE_RATE_LIMIT__PER_CLIENT="1000000/minute",
        ),
        port,
        tmp_path / "recommender.log",
        args=["serve", "--host", "127.0.0.1", "--port", str(port)],
    ).start("/readyz")
    v2 = f"{v1}-swapped"
    try:
        refused = httpx.get(f"{server.url}/api/recommendations", params={"user_id": "ml-1"})
        assert refused.status_code == 401, refused.text

        async def scenario() -> tuple[list[int], list[str], list[str]]:
            stop = asyncio.Event()
            load = asyncio.create_task(_hammer(server.url, stop, workers=16))
            await asyncio.sleep(1.5)
            with connect(served_db) as conn:  # publish a new version (the same artefact)
                conn.execute(
                    """INSERT INTO recsys.models (version, status, published_at, params, metrics,
                           artefact, artefact_sha256)
                       SELECT %s, 'published', now(), params, metrics, artefact, artefact_sha256
                       FROM recsys.models WHERE version = %s""",
                    (v2, v1),
                )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                r = httpx.get(
                    f"{server.url}/api/recommendations",
                    params={"user_id": "ml-1"},
                    headers=INTERNAL,
                )
                if r.json()["model_version"] == v2:
                    break
            await asyncio.sleep(1.5)  # keep the load on after the swap
            stop.set()
            return await load

        statuses, versions, errors = asyncio.run(scenario())
        log = server.tail()
    finally:
        server.stop()
    assert not errors, errors[:5]
    assert len(statuses) > 200 and set(statuses) == {200}, {
        s: statuses.count(s) for s in set(statuses)
    }
    # v1 answered, then v2 took over for good
    assert versions[0] == v1 and versions[-1] == v2, log
    switch = versions.index(v2)
    assert set(versions[:switch]) == {v1}
    assert versions[switch:].count(v1) <= 16  # only requests already in flight at the swap
