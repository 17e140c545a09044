"""The offline TMDB server: request stats, its rate limit, genres and its command line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cinepulse_common import paths
from cinepulse_devstack import tmdb_offline
from cinepulse_devstack.tmdb_offline import (
    create_app,
    main,
)
from tests.unit.tmdb.fakes import AUTH, AVATAR, get, needs_tmdb_data

pytestmark = needs_tmdb_data


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
    assert str(paths.datasets_root()) == "/somewhere/else"
    assert paths.dataset_dir("tmdb-5000").parent in paths.dataset_roots()
    monkeypatch.delenv("CINEPULSE_DATASETS")
    assert paths.datasets_root() in (
        paths.repo_root().parent / "shared" / "datasets",  # a mirror beside the checkout
        paths.datasets_cache(),
    )
