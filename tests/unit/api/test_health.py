"""Liveness, readiness failing when PostgreSQL does not answer, and 503 from a read."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_liveness_ok_and_readiness_fails_without_database(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 503
    # why (the driver's message: host, port, database) is logged, not answered
    assert r.json() == {"status": "unavailable", "checks": {"postgres": "down"}}
    for detail in ("127.0.0.1", "none", "error", "Timeout", "Error"):
        assert detail not in r.text, detail


def test_a_database_that_does_not_answer_is_503_with_retry_after(client: TestClient) -> None:
    r = client.get("/api/movies/1")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.json() == {"detail": "the database is unavailable (PoolTimeout); retry later"}
