"""The offline TMDB server: movie details in the shape of TMDB's recorded examples, and auth.

Runs against the shared data sets (TMDB 5000 CSV, TMDB's OpenAPI description) in process;
nothing has to be running."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cinepulse_devstack import tmdb_offline
from cinepulse_devstack.tmdb_offline import (
    create_app,
)
from tests.unit.tmdb.fakes import AUTH, AVATAR, TOKEN, get, needs_tmdb_data

pytestmark = needs_tmdb_data


# ---- details ----------------------------------------------------------------------------------


def test_details_has_exactly_the_recorded_fields(
    client: TestClient, recorded: tmdb_offline.Recorded
) -> None:
    r = get(client, f"/3/movie/{AVATAR}")
    assert r.status_code == 200
    body = r.json()
    assert list(body) == list(recorded.details)  # same keys, same order
    assert body["id"] == AVATAR and body["title"] == "Avatar"
    assert body["release_date"] == "2009-12-10"
    assert body["runtime"] == 162 and body["budget"] == 237000000
    assert body["poster_path"] is None and body["imdb_id"] is None
    assert body["genres"][0] == {"id": 28, "name": "Action"}
    example = recorded.details
    assert set(body["production_companies"][0]) == set(example["production_companies"][0])
    assert body["production_companies"][0]["origin_country"] == ""
    assert set(body["spoken_languages"][0]) == set(example["spoken_languages"][0])
    assert {"english_name": "Spanish", "iso_639_1": "es", "name": "Español"} in body[
        "spoken_languages"
    ]
    for key, value in example.items():  # same JSON types where the example has a value
        if value is not None and body[key] is not None:
            assert type(body[key]) is type(value) or {type(body[key]), type(value)} <= {
                int,
                float,
            }, key


def test_every_movie_has_the_recorded_fields(
    client: TestClient, recorded: tmdb_offline.Recorded, rows: list[dict[str, str]]
) -> None:
    movies = client.app.state.tmdb.movies  # type: ignore[attr-defined]
    assert len(movies) == len(rows) == 3000
    keys = list(recorded.details)
    assert all(list(m.details) == keys for m in movies.values())


def test_append_to_response_adds_keywords_and_credits(
    client: TestClient, recorded: tmdb_offline.Recorded
) -> None:
    body = get(client, f"/3/movie/{AVATAR}", append_to_response="keywords,credits").json()
    assert set(body) == set(recorded.details) | {"keywords", "credits"}
    keywords = body["keywords"]["keywords"]
    assert {"id": 1463, "name": "culture clash"} in keywords
    assert all(set(k) == {"id", "name"} for k in keywords)
    assert body["credits"] == {"cast": [], "crew": []}
    assert set(recorded.credits) >= {"cast", "crew"}

    only_kw = get(client, f"/3/movie/{AVATAR}", append_to_response="keywords").json()
    assert "keywords" in only_kw and "credits" not in only_kw
    plain = get(client, f"/3/movie/{AVATAR}").json()
    assert "keywords" not in plain and "credits" not in plain
    standalone = get(client, f"/3/movie/{AVATAR}/keywords").json()
    assert standalone == {"id": AVATAR, "keywords": keywords}


def test_unknown_movie_is_tmdb_404(client: TestClient) -> None:
    for path in ("/3/movie/1", "/3/movie/not-a-number", "/3/movie/1/keywords", "/3/nope"):
        r = get(client, path)
        assert r.status_code == 404, path
        assert r.json() == {
            "success": False,
            "status_code": 34,
            "status_message": "The resource you requested could not be found.",
        }


# ---- auth -------------------------------------------------------------------------------------

INVALID_KEY = {
    "success": False,
    "status_code": 7,
    "status_message": "Invalid API key: You must be granted a valid key.",
}


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({}, {}),
        ({"Authorization": "Bearer wrong"}, {}),
        ({"Authorization": TOKEN}, {}),
        ({}, {"api_key": "wrong"}),
        ({}, {"api_key": TOKEN}),
    ],
)
def test_missing_or_wrong_credentials_are_401(
    client: TestClient, headers: dict[str, str], params: dict[str, str]
) -> None:
    r = client.get(f"/3/movie/{AVATAR}", headers=headers, params=params)
    assert r.status_code == 401
    assert r.json() == INVALID_KEY


def test_bearer_token_or_api_key_is_accepted(client: TestClient) -> None:
    assert client.get(f"/3/movie/{AVATAR}", headers=AUTH).status_code == 200
    assert (
        client.get(f"/3/movie/{AVATAR}", params={"api_key": "offline-api-key"}).status_code == 200
    )
    assert client.get(
        "/3/genre/movie/list", headers={"authorization": "bearer " + TOKEN}
    ).is_success


def test_credentials_are_configurable() -> None:
    app = create_app(token="t0k", api_key="k3y")
    with TestClient(app) as c:
        assert c.get("/3/genre/movie/list", headers={"Authorization": "Bearer t0k"}).is_success
        assert c.get("/3/genre/movie/list", params={"api_key": "k3y"}).is_success
        assert c.get("/3/genre/movie/list", headers=AUTH).status_code == 401
