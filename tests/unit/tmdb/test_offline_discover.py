"""The offline TMDB server: discover (paging, windows, order) and changes."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient

from cinepulse_devstack import tmdb_offline
from cinepulse_devstack.tmdb_offline import (
    create_app,
)
from tests.unit.tmdb.fakes import AUTH, AVATAR, MAX_PAGES, discover, get, needs_tmdb_data

pytestmark = needs_tmdb_data


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
