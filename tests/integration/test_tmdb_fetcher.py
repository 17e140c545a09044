"""tmdb-fetcher against the offline TMDB server, with the real Kafka, MongoDB-protocol
server and PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import TopicPartition

from cinepulse_common import topics
from cinepulse_common.kafka import make_consumer
from cinepulse_common.mongo import make_client
from cinepulse_common.postgres import connect
from cinepulse_common.settings import KafkaSettings, MongoSettings, PostgresSettings
from cinepulse_devstack import tmdb_offline
from cinepulse_tmdb_fetcher import metrics
from cinepulse_tmdb_fetcher.__main__ import EXIT_AUTH, EXIT_OK, EXIT_UNAVAILABLE, run
from cinepulse_tmdb_fetcher.pipeline import Fetcher
from cinepulse_tmdb_fetcher.settings import TmdbFetcherSettings
from tests.datasets import require
from tests.integration.services import ServiceProcess, free_port, service_env

pytestmark = pytest.mark.integration

TOKEN = "offline-read-token"
MAX_PAGES = 5  # far below TMDB's 500: a full load of 3,000 movies must walk date windows


@pytest.fixture(scope="module")
def tmdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    require("tmdb-5000")  # the real set (without it the server would serve a synthetic one)
    port = free_port()
    svc = ServiceProcess(
        "cinepulse_devstack.tmdb_offline",
        service_env(),
        port,
        tmp_path_factory.mktemp("tmdb") / "tmdb.log",
        args=["--port", str(port), "--max-pages", str(MAX_PAGES), "--catalogue", "tmdb-5000"],
    )
    svc.start(ready_path="/__admin/stats")
    yield svc
    svc.stop()


@pytest.fixture
def admin(tmdb: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tmdb.url + "/__admin", timeout=10) as client:
        client.post("/reset").raise_for_status()
        yield client


@pytest.fixture
def settings(
    tmdb: ServiceProcess,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    mongo_settings: MongoSettings,
) -> TmdbFetcherSettings:
    return TmdbFetcherSettings(
        kafka=kafka_settings,
        postgres=pg_settings,
        mongo=mongo_settings,
        tmdb={  # type: ignore[arg-type]
            "base_url": tmdb.url,
            "token": TOKEN,
            "rate_per_s": 400,
            "backoff_base_s": 0.05,
            "backoff_max_s": 0.5,
        },
    )


def fetch(settings: TmdbFetcherSettings, mode: str, *ids: int) -> tuple[int, Fetcher]:
    args = argparse.Namespace(mode=mode, ids=list(ids), dry_run=False)
    return asyncio.run(run(settings, args))


def run_cli(
    settings: TmdbFetcherSettings, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The fetcher's CLI in its own process, configured like ``settings`` (+ ``env``)."""
    variables = service_env(
        CINEPULSE_KAFKA__BOOTSTRAP_SERVERS=settings.kafka.bootstrap_servers,
        CINEPULSE_KAFKA__TOPIC_PREFIX=settings.kafka.topic_prefix,
        CINEPULSE_POSTGRES__DSN=settings.postgres.dsn.get_secret_value(),
        CINEPULSE_MONGO__URL=settings.mongo.url.get_secret_value(),
        CINEPULSE_MONGO__DATABASE=settings.mongo.database,
        CINEPULSE_TMDB__BASE_URL=settings.tmdb.base_url,
        CINEPULSE_TMDB__TOKEN=TOKEN,
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "cinepulse_tmdb_fetcher", *args],
        env=variables,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def kafka_records(kafka: KafkaSettings) -> int:
    consumer = make_consumer(kafka, group_id=f"t-{time.monotonic_ns()}")
    try:
        total = 0
        for p in range(3):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(kafka.topic(topics.MOVIE), p), timeout=10
            )
            total += high - low
        return total
    finally:
        consumer.close()


def stg(pg: PostgresSettings) -> dict[int, tuple[str, str]]:
    with connect(pg) as conn:
        rows = conn.execute("SELECT movie_id, title, content_hash FROM stg_movies").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def raw_docs(mongo: MongoSettings) -> list[dict[str, Any]]:
    with make_client(mongo) as client:
        return list(client[mongo.database]["movies"].find({}, {"response": 0}))


def some_ids(admin: httpx.Client, n: int) -> list[int]:
    """``n`` real movie ids of the data set the offline server serves."""
    with tmdb_offline.DEFAULT_CSV.open(newline="", encoding="utf-8") as f:
        return [int(row["id"]) for _, row in zip(range(n), csv.DictReader(f), strict=False)]


def test_full_load_walks_date_windows_and_a_rerun_writes_nothing_twice(
    settings: TmdbFetcherSettings, admin: httpx.Client
) -> None:
    code, fetcher = fetch(settings, "full")
    assert code == EXIT_OK
    assert fetcher.counts.discovered == 3000  # every movie, though a window serves 100 only
    assert fetcher.counts.updated == 3000
    assert len(stg(settings.postgres)) == 3000
    assert len(raw_docs(settings.mongo)) == 3000
    assert kafka_records(settings.kafka) == 3000
    assert fetcher.watermark() is not None

    code, again = fetch(settings, "full")
    assert code == EXIT_OK
    assert (again.counts.updated, again.counts.unchanged) == (0, 3000)
    assert kafka_records(settings.kafka) == 3000  # no duplicate record
    assert len(raw_docs(settings.mongo)) == 3000  # same content, same version


def test_incremental_picks_up_changes_and_advances_the_watermark(
    settings: TmdbFetcherSettings, admin: httpx.Client
) -> None:
    ids = some_ids(admin, 40)
    assert fetch(settings, "ids", *ids)[0] == EXIT_OK
    changed = ids[:5]
    admin.post(
        "/changes", json={"ids": changed, "title_suffix": " (Director's Cut)"}
    ).raise_for_status()

    code, fetcher = fetch(settings, "incremental")
    assert code == EXIT_OK
    assert fetcher.counts.updated == 5
    rows = stg(settings.postgres)
    assert all(rows[i][0].endswith("(Director's Cut)") for i in changed)
    assert not any(rows[i][0].endswith("(Director's Cut)") for i in ids[5:])
    assert kafka_records(settings.kafka) == 40 + 5
    first_mark = fetcher.watermark()
    assert first_mark is not None

    code, again = fetch(settings, "incremental")
    assert code == EXIT_OK and again.counts.updated == 0
    assert again.watermark() is not None and again.watermark() >= first_mark  # type: ignore[operator]


def test_429_storms_and_5xx_bursts_leave_no_movie_missing_or_duplicated(
    settings: TmdbFetcherSettings, admin: httpx.Client
) -> None:
    ids = some_ids(admin, 300)
    admin.post(
        "/faults",
        json={
            "status_429": {"count": 40, "retry_after": 0},
            "status_5xx": {"count": 40, "status": 503},
            "malformed": {"count": 5, "kind": "truncated"},
            "path_regex": r"^/3/movie/\d+$",
        },
    ).raise_for_status()
    retries_before = sum(
        s.value for m in metrics.RETRIES.collect() for s in m.samples if s.name.endswith("_total")
    )
    code, fetcher = fetch(settings, "ids", *ids)
    assert code == EXIT_OK
    served = admin.get("/stats").json()["faults_served"]
    assert served.get("status_429") == 40 and served.get("status_5xx") == 40, served
    assert fetcher.counts.fetched == 300 and fetcher.counts.malformed == 0
    assert set(stg(settings.postgres)) == set(ids)
    assert sorted(d["movie_id"] for d in raw_docs(settings.mongo)) == sorted(ids)
    assert kafka_records(settings.kafka) == 300
    retries = sum(
        s.value for m in metrics.RETRIES.collect() for s in m.samples if s.name.endswith("_total")
    )
    assert retries - retries_before >= 85
    assert fetcher.client.backoff_wait_s > 0


def test_malformed_payloads_are_counted_and_skipped_or_repaired(
    settings: TmdbFetcherSettings, admin: httpx.Client
) -> None:
    ids = some_ids(admin, 30)
    for kind in ("missing_fields", "nulls", "extra_fields"):
        admin.post(
            "/faults",
            json={"malformed": {"count": 3, "kind": kind}, "path_regex": r"^/3/movie/\d+$"},
        ).raise_for_status()
    code, fetcher = fetch(settings, "ids", *ids)
    assert code == EXIT_OK
    c = fetcher.counts
    assert c.fetched + c.malformed == 30
    assert c.malformed >= 3  # no id or no title: skipped
    assert c.repaired >= 3  # nulls where TMDB sends nulls: repaired
    assert len(stg(settings.postgres)) == c.fetched


def test_a_missing_movie_is_recorded_and_skipped(
    settings: TmdbFetcherSettings, admin: httpx.Client
) -> None:
    ids = some_ids(admin, 5)
    code, fetcher = fetch(settings, "ids", *ids, 999_999_999)
    assert code == EXIT_OK
    assert fetcher.counts.not_found == 1 and fetcher.counts.not_found_ids == [999_999_999]
    assert set(stg(settings.postgres)) == set(ids)


def test_a_crash_mid_run_resumes_with_no_duplicate_and_no_gap(
    settings: TmdbFetcherSettings, admin: httpx.Client
) -> None:
    ids = some_ids(admin, 300)
    brittle = settings.model_copy(
        update={"tmdb": settings.tmdb.model_copy(update={"max_retries": 1})}
    )
    # the 250th movie keeps failing: chunks 1 and 2 are committed, chunk 3 is not
    admin.post(
        "/faults",
        json={"status_5xx": {"count": 50, "status": 502}, "path_regex": rf"^/3/movie/{ids[249]}$"},
    ).raise_for_status()
    code, _ = fetch(brittle, "ids", *ids)
    assert code == EXIT_UNAVAILABLE
    assert len(stg(settings.postgres)) == 200
    admin.post("/reset").raise_for_status()

    code, resumed = fetch(settings, "ids", *ids)
    assert code == EXIT_OK
    assert (resumed.counts.unchanged, resumed.counts.updated) == (200, 100)
    assert set(stg(settings.postgres)) == set(ids)
    assert kafka_records(settings.kafka) == 300  # exactly one record per movie
    with connect(settings.postgres) as conn:
        statuses = conn.execute("SELECT status FROM tmdb_fetch_runs ORDER BY started_at").fetchall()
    assert [s[0] for s in statuses] == ["failed", "succeeded"]


def test_an_invalid_token_fails_fast_with_a_clear_message(
    settings: TmdbFetcherSettings, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("not-the-token\n")
    started = time.monotonic()
    proc = run_cli(settings, "ids", "550", CINEPULSE_TMDB__TOKEN_FILE=str(tmp_path / "token"))
    assert proc.returncode == EXIT_AUTH, proc.stderr[-2000:]
    assert "invalid TMDB token" in proc.stderr
    assert time.monotonic() - started < 20


def test_dry_run_fetches_and_writes_nothing(
    settings: TmdbFetcherSettings, admin: httpx.Client
) -> None:
    ids = some_ids(admin, 10)
    args = argparse.Namespace(mode="ids", ids=ids, dry_run=True)
    code, fetcher = asyncio.run(run(settings, args))
    assert code == EXIT_OK and fetcher.counts.fetched == 10
    assert stg(settings.postgres) == {}
    assert raw_docs(settings.mongo) == []
    assert kafka_records(settings.kafka) == 0
    stats = admin.get("/stats").json()["requests"]
    assert sum(stats["/3/movie/{movie_id}"].values()) == 10


def test_the_cli_prints_a_summary_and_pushes_metrics_to_a_pushgateway(
    settings: TmdbFetcherSettings, admin: httpx.Client
) -> None:
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.skip("prometheus-pushgateway is not installed (make setup installs it)")
    port = free_port()
    gateway = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        ids = some_ids(admin, 3)
        proc = run_cli(
            settings, "ids", *map(str, ids), CINEPULSE_PUSHGATEWAY_URL=f"http://127.0.0.1:{port}"
        )
        assert proc.returncode == EXIT_OK, proc.stderr[-2000:]
        assert "tmdb-fetcher ids:" in proc.stderr and "updated" in proc.stderr
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["updated"] == 3 and summary["exit_code"] == 0
        pushed = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        line = next(
            ln
            for ln in pushed.splitlines()
            if ln.startswith("cinepulse_tmdb_movies_total") and 'outcome="updated"' in ln
        )
        assert 'job="cinepulse-tmdb-fetcher"' in line and line.endswith(" 3")
    finally:
        gateway.terminate()
        gateway.wait(10)
