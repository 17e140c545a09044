"""The offline TMDB server: shapes from TMDB's recorded examples, paging, auth, faults.

Runs against the shared data sets (TMDB 5000 CSV, TMDB's OpenAPI description) in process;
nothing has to be running.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cinepulse_devstack import tmdb_offline
from cinepulse_devstack.tmdb_offline import (
    DEFAULT_CSV,
    DEFAULT_OPENAPI,
    create_app,
    load_recorded,
    main,
)

pytestmark = pytest.mark.skipif(
    not (DEFAULT_CSV.is_file() and DEFAULT_OPENAPI.is_file()),
    reason="the shared TMDB data sets are not available",
)

TOKEN = "offline-read-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AVATAR = 19995
MAX_PAGES = 5


@pytest.fixture(scope="module")
def recorded() -> tmdb_offline.Recorded:
    return load_recorded(DEFAULT_OPENAPI)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with DEFAULT_CSV.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(max_pages=MAX_PAGES)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as c:
        c.post("/__admin/reset")
        yield c
        c.post("/__admin/reset")


def get(client: TestClient, path: str, **params: Any) -> Any:
    return client.get(path, params=params, headers=AUTH)


def discover(client: TestClient, **params: Any) -> dict[str, Any]:
    r = get(client, "/3/discover/movie", **params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


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


# ---- discover ---------------------------------------------------------------------------------


def test_discover_pages_of_20_in_the_recorded_shape(
    client: TestClient, recorded: tmdb_offline.Recorded, rows: list[dict[str, str]]
) -> None:
    body = discover(client)
    assert set(body) == set(recorded.discover)
    assert body["page"] == 1 and len(body["results"]) == 20
    assert body["total_results"] == len(rows)
    assert body["total_pages"] == MAX_PAGES  # 150 real pages, capped like TMDB
    entry = body["results"][0]
    assert list(entry) == list(recorded.discover["results"][0])
    assert isinstance(entry["genre_ids"], list) and all(
        isinstance(g, int) for g in entry["genre_ids"]
    )
    popularity = [e["popularity"] for e in body["results"]]
    assert popularity == sorted(popularity, reverse=True)  # popularity.desc by default
    page2 = discover(client, page=2)
    assert page2["page"] == 2
    assert not {e["id"] for e in body["results"]} & {e["id"] for e in page2["results"]}
    assert page2["results"][0]["popularity"] <= popularity[-1]


def test_discover_window_filters_are_inclusive(
    client: TestClient, rows: list[dict[str, str]]
) -> None:
    day = "2013-07-18"  # the busiest release date in the data set (7 movies)
    expected = {int(r["id"]) for r in rows if r["release_date"] == day}
    body = discover(client, **{"primary_release_date.gte": day, "primary_release_date.lte": day})
    assert body["total_results"] == len(expected) == 7
    assert {e["id"] for e in body["results"]} == expected
    assert body["total_pages"] == 1

    year = discover(
        client,
        **{"primary_release_date.gte": "2010-01-01", "primary_release_date.lte": "2010-12-31"},
    )
    assert year["total_results"] == sum(1 for r in rows if r["release_date"].startswith("2010"))
    empty = discover(client, **{"primary_release_date.gte": "2030-01-01"})
    assert empty["total_results"] == 0 and empty["results"] == [] and empty["total_pages"] == 0


def test_discover_sorts_by_release_date_ascending(client: TestClient) -> None:
    window = {"primary_release_date.gte": "2000-01-01", "primary_release_date.lte": "2001-12-31"}
    dates: list[str] = []
    for page in (1, 2, 3):
        body = discover(client, sort_by="primary_release_date.asc", page=page, **window)
        dates += [e["release_date"] for e in body["results"]]
    assert dates == sorted(dates) and dates[0] >= "2000-01-01"
    desc = discover(client, sort_by="primary_release_date.desc", **window)
    got = [e["release_date"] for e in desc["results"]]
    assert got == sorted(got, reverse=True) and got[0] <= "2001-12-31"


def test_discover_page_over_the_cap_is_tmdb_400(client: TestClient) -> None:
    message = (
        f"Invalid page: Pages start at 1 and max at {MAX_PAGES}. "
        "They are expected to be an integer."
    )
    for page in (MAX_PAGES + 1, 0, "x"):
        r = get(client, "/3/discover/movie", page=page)
        assert r.status_code == 400
        assert r.json() == {"success": False, "status_code": 22, "status_message": message}
    assert discover(client, page=MAX_PAGES)["page"] == MAX_PAGES


def test_default_cap_is_tmdbs_500() -> None:
    with TestClient(create_app()) as c:
        r = c.get("/3/discover/movie", params={"page": 501}, headers=AUTH)
        assert r.status_code == 400
        assert "max at 500." in r.json()["status_message"]
        assert c.get("/3/discover/movie", headers=AUTH).json()["total_pages"] == 150


def test_windows_enumerate_every_dated_movie_exactly_once(
    client: TestClient, rows: list[dict[str, str]]
) -> None:
    """What a fetcher does under the page cap: split a date window until it fits."""
    limit = MAX_PAGES * 20
    seen: list[int] = []

    def walk(lo: date, hi: date) -> None:
        params = {
            "primary_release_date.gte": lo.isoformat(),
            "primary_release_date.lte": hi.isoformat(),
            "sort_by": "primary_release_date.asc",
        }
        first = discover(client, **params)
        if first["total_results"] > limit:
            assert lo < hi, "one day holds more than the cap"
            mid = lo + (hi - lo) // 2
            walk(lo, mid)
            walk(mid + timedelta(days=1), hi)
            return
        seen.extend(e["id"] for e in first["results"])
        for page in range(2, first["total_pages"] + 1):
            seen.extend(e["id"] for e in discover(client, page=page, **params)["results"])

    walk(date(1900, 1, 1), date(2030, 12, 31))
    dated = {int(r["id"]) for r in rows if r["release_date"]}
    assert len(seen) == len(set(seen)) == len(dated)
    assert set(seen) == dated


# ---- changes ----------------------------------------------------------------------------------


def test_changes_list_what_admin_marked(client: TestClient) -> None:
    assert get(client, "/3/movie/changes").json()["results"] == []
    r = client.post(
        "/__admin/changes",
        json={"ids": [AVATAR, 285], "at": "2024-05-02T10:00:00Z", "title_suffix": " (v2)"},
    )
    assert r.status_code == 200
    client.post("/__admin/changes", json={"ids": [11], "at": "2024-05-04T00:00:00+00:00"})

    body = get(client, "/3/movie/changes", start_date="2024-05-01", end_date="2024-05-02").json()
    assert body["results"] == [{"id": 285, "adult": False}, {"id": AVATAR, "adult": False}]
    assert body["page"] == 1 and body["total_pages"] == 1 and body["total_results"] == 2
    later = get(client, "/3/movie/changes", start_date="2024-05-03", end_date="2024-05-04")
    assert later.json()["results"] == [{"id": 11, "adult": False}]
    by_time = get(
        client,
        "/3/movie/changes",
        start_date="2024-05-02T10:00:00Z",
        end_date="2024-05-02T10:00:00Z",
    ).json()
    assert by_time["total_results"] == 2
    none = get(client, "/3/movie/changes", start_date="2024-05-05", end_date="2024-05-06")
    assert none.json()["results"] == []

    assert get(client, f"/3/movie/{AVATAR}").json()["title"] == "Avatar (v2)"
    window = {"primary_release_date.gte": "2009-12-10", "primary_release_date.lte": "2009-12-10"}
    assert "Avatar (v2)" in {e["title"] for e in discover(client, **window)["results"]}

    client.post("/__admin/reset")
    assert get(client, f"/3/movie/{AVATAR}").json()["title"] == "Avatar"
    after = get(client, "/3/movie/changes", start_date="2024-05-01", end_date="2024-05-06")
    assert after.json()["total_results"] == 0


def test_changes_default_to_now_and_page_by_100(client: TestClient) -> None:
    ids = sorted(client.app.state.tmdb.movies)[:150]  # type: ignore[attr-defined]
    assert client.post("/__admin/changes", json={"ids": ids}).status_code == 200
    first = get(client, "/3/movie/changes").json()  # the last 24 hours
    assert first["total_results"] == 150 and first["total_pages"] == 2
    assert len(first["results"]) == 100
    second = get(client, "/3/movie/changes", page=2).json()
    assert {e["id"] for e in first["results"] + second["results"]} == set(ids)


def test_admin_changes_rejects_unknown_ids(client: TestClient) -> None:
    r = client.post("/__admin/changes", json={"ids": [1, AVATAR]})
    assert r.status_code == 404 and r.json()["ids"] == [1]
    assert client.post("/__admin/changes", json={"ids": "x"}).status_code == 400


# ---- faults -----------------------------------------------------------------------------------


def _assert_normal(client: TestClient) -> None:
    r = get(client, f"/3/movie/{AVATAR}")
    assert r.status_code == 200 and r.json()["title"] == "Avatar"


def test_429_fault_with_retry_after_then_normal(client: TestClient) -> None:
    client.post("/__admin/faults", json={"status_429": {"count": 2, "retry_after": 3}})
    for _ in range(2):
        r = get(client, f"/3/movie/{AVATAR}")
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "3"
        assert r.json() == {
            "success": False,
            "status_code": 25,
            "status_message": "Your request count (#) is over the allowed limit of (40).",
        }
    _assert_normal(client)
    assert client.get("/__admin/stats").json()["faults_served"] == {"status_429": 2}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_fault_then_normal(client: TestClient, status: int) -> None:
    client.post("/__admin/faults", json={"status_5xx": {"count": 3, "status": status}})
    for _ in range(3):
        r = get(client, f"/3/movie/{AVATAR}")
        assert r.status_code == status
        body = r.json()
        assert body["success"] is False and isinstance(body["status_code"], int)
        assert body["status_message"]
    _assert_normal(client)


def test_slow_fault_delays_then_normal(client: TestClient) -> None:
    client.post("/__admin/faults", json={"slow": {"count": 1, "delay_s": 0.3}})
    started = time.perf_counter()
    r = get(client, f"/3/movie/{AVATAR}")
    assert time.perf_counter() - started >= 0.3
    assert r.status_code == 200 and r.json()["title"] == "Avatar"
    started = time.perf_counter()
    _assert_normal(client)
    assert time.perf_counter() - started < 0.3


def test_malformed_truncated_and_not_json(client: TestClient) -> None:
    client.post("/__admin/faults", json={"malformed": {"count": 1, "kind": "truncated"}})
    r = get(client, f"/3/movie/{AVATAR}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)
    _assert_normal(client)

    client.post("/__admin/faults", json={"malformed": {"count": 2, "kind": "not_json"}})
    for _ in range(2):
        r = get(client, "/3/discover/movie")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.text)
    _assert_normal(client)


def test_malformed_missing_nulls_extra(client: TestClient, recorded: tmdb_offline.Recorded) -> None:
    client.post("/__admin/faults", json={"malformed": {"count": 1, "kind": "missing_fields"}})
    body = get(client, f"/3/movie/{AVATAR}").json()
    assert "id" not in body and "title" not in body and "overview" in body

    client.post("/__admin/faults", json={"malformed": {"count": 1, "kind": "nulls"}})
    body = get(client, f"/3/movie/{AVATAR}").json()
    assert body["genres"] is None and body["runtime"] is None and body["release_date"] is None
    assert body["id"] == AVATAR

    client.post("/__admin/faults", json={"malformed": {"count": 1, "kind": "extra_fields"}})
    body = get(client, f"/3/movie/{AVATAR}").json()
    assert set(body) > set(recorded.details)

    client.post("/__admin/faults", json={"malformed": {"count": 1, "kind": "nulls"}})
    results = discover(client)["results"]
    assert all(e["genre_ids"] is None and e["release_date"] is None for e in results)
    # the stored movie is untouched by any of it
    _assert_normal(client)
    assert discover(client)["results"][0]["genre_ids"] is not None
    served = client.get("/__admin/stats").json()["faults_served"]
    assert served["malformed"] == 4 and served["malformed:nulls"] == 2


def test_path_regex_limits_faults(client: TestClient) -> None:
    client.post(
        "/__admin/faults",
        json={"status_5xx": {"count": 1, "status": 503}, "path_regex": r"^/3/movie/\d+$"},
    )
    assert get(client, "/3/discover/movie").status_code == 200
    assert get(client, f"/3/movie/{AVATAR}/keywords").status_code == 200
    assert get(client, f"/3/movie/{AVATAR}").status_code == 503
    _assert_normal(client)


def test_pending_faults_are_served_in_a_fixed_order(client: TestClient) -> None:
    client.post(
        "/__admin/faults",
        json={
            "slow": {"count": 1, "delay_s": 0.01},
            "malformed": {"count": 1, "kind": "not_json"},
            "status_5xx": {"count": 1, "status": 502},
            "status_429": {"count": 1, "retry_after": 1},
        },
    )
    statuses = [get(client, f"/3/movie/{AVATAR}") for _ in range(4)]
    assert [r.status_code for r in statuses] == [429, 502, 200, 200]
    assert statuses[2].headers["content-type"].startswith("text/plain")
    assert statuses[3].json()["title"] == "Avatar"
    assert client.get("/__admin/faults").json()["pending"] == []
    _assert_normal(client)


def test_unauthorized_requests_do_not_use_up_faults(client: TestClient) -> None:
    client.post("/__admin/faults", json={"status_5xx": {"count": 1}})
    assert client.get(f"/3/movie/{AVATAR}").status_code == 401
    assert get(client, f"/3/movie/{AVATAR}").status_code == 500


def test_bad_fault_bodies_are_refused(client: TestClient) -> None:
    bodies: list[dict[str, Any]] = [
        {"status_5xx": {"count": 1, "status": 404}},
        {"malformed": {"count": 1, "kind": "weird"}},
        {"bogus": {}},
        {"slow": {"count": -1}},
        {"status_429": {"count": 1}, "path_regex": "("},
    ]
    for body in bodies:
        assert client.post("/__admin/faults", json=body).status_code == 400, body
    assert client.get("/__admin/faults").json()["pending"] == []


# ---- stats, rate limit, genres, CLI -------------------------------------------------------------


def test_stats_count_requests_by_template_and_status(client: TestClient) -> None:
    get(client, f"/3/movie/{AVATAR}")
    get(client, "/3/movie/285")
    get(client, "/3/movie/1")
    client.get(f"/3/movie/{AVATAR}")  # no credentials
    get(client, "/3/discover/movie")
    client.post("/__admin/faults", json={"status_429": {"count": 1}})
    get(client, "/3/genre/movie/list")
    stats = client.get("/__admin/stats").json()
    assert stats["requests"] == {
        "/3/movie/{movie_id}": {"200": 2, "404": 1, "401": 1},
        "/3/discover/movie": {"200": 1},
        "/3/genre/movie/list": {"429": 1},
    }
    assert stats["total_requests"] == 6
    assert stats["faults_served"] == {"status_429": 1}
    client.post("/__admin/reset")
    stats = client.get("/__admin/stats").json()
    assert stats["requests"] == {} and stats["faults_served"] == {}


def test_rate_limit_answers_429_with_retry_after_1() -> None:
    with TestClient(create_app(rate_limit_per_s=3)) as c:
        codes = [c.get("/3/genre/movie/list", headers=AUTH) for _ in range(5)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429, 429]
        assert codes[3].headers["Retry-After"] == "1"
        assert codes[3].json()["status_code"] == 25
        assert c.get("/__admin/stats").json()["rate_limited"] == 2
        time.sleep(1.05)
        assert c.get("/3/genre/movie/list", headers=AUTH).status_code == 200


def test_genre_list_is_the_recorded_example(
    client: TestClient, recorded: tmdb_offline.Recorded
) -> None:
    r = get(client, "/3/genre/movie/list")
    assert r.status_code == 200
    assert r.json() == recorded.genres
    assert len(r.json()["genres"]) == 19


def test_missing_data_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(tmdb_offline.DatasetMissingError):
        create_app(tmp_path / "nope.csv")
    rc = main(["--movies-csv", str(tmp_path / "nope.csv")])
    assert rc == 2
    assert "nope.csv" in capsys.readouterr().err


def test_datasets_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CINEPULSE_DATASETS", "/somewhere/else")
    assert str(tmdb_offline.datasets_root()) == "/somewhere/else"
    monkeypatch.delenv("CINEPULSE_DATASETS")
    assert tmdb_offline.datasets_root().parts[-2:] == ("shared", "datasets")
