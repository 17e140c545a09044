"""The offline TMDB server's fault injection: 429, 5xx, slow and malformed answers."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cinepulse_devstack import tmdb_offline
from tests.unit.tmdb.fakes import AVATAR, discover, get, needs_tmdb_data

pytestmark = needs_tmdb_data


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
