"""Whole DAG runs with ``dag.test()`` against the local stack: every pod task runs its real
container command (the workspace's console script, see :mod:`local_pods`) on a PostgreSQL
database, a MongoDB database and Kafka topics of the test's own. The pods' PostgreSQL Secret
is the chart's logins Secret with each service's real login (migration 0012's roles), so a
task that needs a grant its role lacks fails here; the owner's DSN only sets up and checks."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from cinepulse_airflow import config
from conftest import LiveAlertmanager, LivePrometheus, stack_helper, workspace_bin
from local_pods import LocalPods

pytestmark = pytest.mark.integration

TMDB_TOKEN = "offline-read-token"
LOGINS_SECRET = "cinepulse-postgresql-logins"  # the chart's, release "cinepulse"
LocalPodsFactory = Callable[..., LocalPods]


@pytest.fixture
def local_pods(
    airflow_db: None,
    stack_resources: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> LocalPodsFactory:
    """``local_pods(command, **config_map)``: from now on every pod task of this test runs
    here, with the test's stack resources as the Secrets and the ConfigMap (plus
    ``config_map``); skips when the workspace has no ``command``. There is no owner's DSN
    among the Secrets: a pod referring to it would fail."""
    res = stack_resources

    def make(command: str, **config_map: str) -> LocalPods:
        workspace_bin(command)
        local = LocalPods(
            secrets={
                LOGINS_SECRET: {f"{s}-dsn": dsn for s, dsn in res["logins"].items()},
                "cinepulse-mongodb": {"url": res["mongo_url"]},
                "cinepulse-tmdb": {"token": TMDB_TOKEN},
            },
            config_map={
                "CINEPULSE_ENVIRONMENT": "test",
                "CINEPULSE_MONGO__DATABASE": res["mongo_database"],
                "CINEPULSE_KAFKA__BOOTSTRAP_SERVERS": res["kafka_bootstrap"],
                "CINEPULSE_KAFKA__TOPIC_PREFIX": res["topic_prefix"],
                **config_map,
            },
            scratch=tmp_path / "pods",
        )
        return local.install(monkeypatch)

    return make


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _login(ran: Any) -> str | None:
    """The PostgreSQL user a local pod connected as."""
    return urlsplit(ran.env["CINEPULSE_POSTGRES__DSN"]).username


def _query(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


@pytest.fixture
def connections(stack_resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The Airflow Connection the health check reads (as the environment would give it): a
    read-only login (the quality check's: SELECT on the facts and schema fallback) is
    enough, so the test gives it that, not the owner's DSN."""
    monkeypatch.setenv("AIRFLOW_CONN_CINEPULSE_POSTGRES", stack_resources["logins"]["quality"])


def _asset_events() -> list[Any]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.query(AssetEvent).all()
        session.expunge_all()
    return events


def test_streaming_guard_forced_then_unhealthy_then_healthy(
    dagbag: Any,
    prometheus: LivePrometheus,
    local_pods: LocalPodsFactory,
    stack_resources: dict[str, Any],
    connections: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    res = stack_resources
    _forget_the_outage()
    arrived = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    ids = json.loads(stack_helper("archive", res["file"], "12", arrived))
    dag = dagbag.dags["streaming_guard"]
    local = local_pods("cinepulse-fallback")
    # 1: forced by the Variable (no Spark either): the fallback covers the last 24 h
    monkeypatch.setenv("AIRFLOW_VAR_USE_PANDAS_FALLBACK", "true")
    first = dag.test()
    assert _states(first) == {
        "check_streaming": "success",
        "choose": "success",
        "run_fallback": "success",
        "record_for_promotion": "success",
        "streaming_ok": "skipped",
    }
    ran = local.ran[-1]
    assert _login(ran) == "cinepulse_fallback_login"
    assert ran.argv[0].endswith("/.venv/bin/cinepulse-fallback")
    assert ran.argv[1:2] == ["run"] and ran.argv[-4:] == [
        *("--extend", ""),  # a new run
        *("--by", f"airflow/streaming_guard/{first.run_id}"),
    ]
    runs = _query(
        res["dsn"],
        "SELECT run_id, status, events_read, window_start, window_end, requested_by"
        " FROM fallback.runs ORDER BY started_at",
    )
    assert len(runs) == 1
    run_id, status, events_read, start, end, by = runs[0]
    assert (status, events_read, by) == (
        "succeeded",
        len(ids),
        f"airflow/streaming_guard/{first.run_id}",
    )
    assert timedelta(hours=23, minutes=59) <= end - start <= timedelta(hours=24)
    assert _query(
        res["dsn"], "SELECT count(*) FROM fallback.fact_rating WHERE run_id = %s", run_id
    ) == [(len(ids),)]
    # recorded for promotion (an asset event naming the run), never promoted by itself
    assert _query(res["dsn"], "SELECT count(*) FROM fact_rating") == [(0,)]
    assert [e.extra for e in _asset_events()] == [{"run_id": run_id, "extended": False}]
    assert _outage_variable() == run_id

    # 2: not forced, Spark still silent: the same outage, so the next window (from where the
    # run ended) extends the run rather than starting another one
    later = json.loads(
        stack_helper("archive", res["file"], "3", datetime.now(UTC).isoformat(), "100")
    )
    monkeypatch.setenv("AIRFLOW_VAR_USE_PANDAS_FALLBACK", "false")
    second = dag.test(logical_date=datetime.now(UTC))
    assert _states(second)["run_fallback"] == "success"
    assert local.ran[-1].argv[-4:-2] == ["--extend", run_id]
    runs = _query(
        res["dsn"],
        "SELECT run_id, status, window_start, window_end, events_read FROM fallback.runs",
    )
    assert len(runs) == 1 and runs[0][:3] == (run_id, "succeeded", start)
    assert runs[0][3] > end and runs[0][4] == len(ids) + len(later)
    assert _query(
        res["dsn"], "SELECT count(*) FROM fallback.fact_rating WHERE run_id = %s", run_id
    ) == [(len(ids) + len(later),)]
    assert _asset_events()[-1].extra == {"run_id": run_id, "extended": True}

    # 3: Spark's heartbeat is fresh (Prometheus answers): healthy, nothing runs
    prometheus.set_heartbeat(time.time() - 1)
    check = dag.get_task("check_streaming").python_callable
    monkeypatch.setitem(check.__globals__, "cfg", config.load({"prometheus_url": prometheus.url}))
    healthy = dag.test(logical_date=datetime.now(UTC))
    assert _states(healthy) == {
        "check_streaming": "success",
        "choose": "success",
        "run_fallback": "skipped",
        "record_for_promotion": "skipped",
        "streaming_ok": "success",
    }
    assert len(local.ran) == 2
    assert _outage_variable() is None  # the outage is over

    # 4: Spark down again: a new outage, a new run, from where the last one ended
    prometheus.set_heartbeat(time.time() - 3600)
    again = dag.test(logical_date=datetime.now(UTC))
    assert _states(again)["run_fallback"] == "success"
    assert local.ran[-1].argv[-4:-2] == ["--extend", ""]
    runs = _query(res["dsn"], "SELECT run_id, window_start FROM fallback.runs ORDER BY started_at")
    assert (
        len(runs) == 2
        and runs[1][1]
        == _query(res["dsn"], "SELECT window_end FROM fallback.runs WHERE run_id = %s", run_id)[0][
            0
        ]
    )
    assert _outage_variable() == runs[1][0]
    _forget_the_outage()


def _outage_variable() -> str | None:
    from airflow.models.variable import Variable

    from cinepulse_airflow import streaming

    value: str | None = Variable.get(streaming.OUTAGE_VARIABLE, default_var=None)
    return value


def _forget_the_outage() -> None:
    from airflow.models.variable import Variable

    from cinepulse_airflow import streaming

    Variable.delete(streaming.OUTAGE_VARIABLE)


def _fallback(res: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(workspace_bin("cinepulse-fallback")), *args],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(Path.home()),
            "CINEPULSE_POSTGRES__DSN": res["dsn"],
            "CINEPULSE_MONGO__URL": res["mongo_url"],
            "CINEPULSE_MONGO__DATABASE": res["mongo_database"],
        },
        capture_output=True,
        text=True,
        check=False,
    )


def test_promote_fallback_by_hand_dry_run_then_named_then_all(
    dagbag: Any, local_pods: LocalPodsFactory, stack_resources: dict[str, Any]
) -> None:
    res = stack_resources
    now = datetime.now(UTC).replace(microsecond=0)
    stack_helper("archive", res["file"], "4", (now - timedelta(minutes=50)).isoformat())
    runs = []
    for start, end in (
        (now - timedelta(hours=1), now - timedelta(minutes=30)),
        (now - timedelta(minutes=30), now),
    ):
        done = _fallback(res, "run", "--from", start.isoformat(), "--to", end.isoformat())
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1])["run_id"])
    dag = dagbag.dags["promote_fallback"]
    local = local_pods("cinepulse-fallback")

    def statuses() -> list[str]:
        return [
            r[0] for r in _query(res["dsn"], "SELECT status FROM fallback.runs ORDER BY started_at")
        ]

    # a dry run of everything pending: logged, nothing changes
    dry = dag.test(run_conf={"run_ids": "all", "dry_run": True})
    assert _states(dry) == {"plan": "success", "promote": "success"}, local.ran[-1].stderr[-2000:]
    assert local.ran[-1].argv[1:] == [
        "promote",
        "--all-pending",
        "--by",
        f"airflow/promote_fallback/{dry.run_id}",
    ]
    assert "would promote 2 run(s)" in local.ran[-1].stderr
    assert _login(local.ran[-1]) == "cinepulse_fallback_login"
    assert statuses() == ["succeeded", "succeeded"]

    # one run by its id
    # (dry_run given each time: dag.test() keeps the previous run's parameters on the DAG)
    named = dag.test(run_conf={"run_ids": [runs[0]], "dry_run": False})
    assert _states(named)["promote"] == "success"
    assert statuses() == ["promoted", "succeeded"], (local.ran[-1].argv, local.ran[-1].stderr)
    assert _query(res["dsn"], "SELECT count(*) FROM fact_rating") == [(4,)]

    # all: the other one; then all again: nothing pending, still a success
    everything = dag.test(run_conf={"run_ids": "all", "dry_run": False})
    assert _states(everything)["promote"] == "success"
    assert statuses() == ["promoted", "promoted"]
    assert _query(
        res["dsn"], "SELECT promoted_by FROM fallback.promotions ORDER BY promoted_at"
    ) == [
        (f"airflow/promote_fallback/{named.run_id}",),
        (f"airflow/promote_fallback/{everything.run_id}",),
    ]
    nothing = dag.test(run_conf={"run_ids": "all", "dry_run": False})
    assert _states(nothing)["promote"] == "success"
    assert "nothing to do" in local.ran[-1].stderr
    assert len(_query(res["dsn"], "SELECT * FROM fallback.promotions")) == 2

    # an unknown run: exit 3, failed at once (no retry can fix it); a bad id: no pod at all
    unknown = dag.test(run_conf={"run_ids": ["fallback-nope"], "dry_run": False})
    assert local.ran[-1].returncode == 3
    (ti,) = [t for t in unknown.get_task_instances() if t.task_id == "promote"]
    assert (str(ti.state), ti.try_number) == ("failed", 1)
    pods_before = len(local.ran)
    bad = dag.test(run_conf={"run_ids": ["--all-pending"], "dry_run": False})
    assert _states(bad) == {"plan": "failed", "promote": "upstream_failed"}
    assert len(local.ran) == pods_before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tmdb_offline(tmp_path: Path) -> Iterator[str]:
    """The offline TMDB server (the workspace's ``cinepulse-tmdb-offline``) on a free port."""
    port = _free_port()
    log = (tmp_path / "tmdb-offline.log").open("wb")
    proc = subprocess.Popen(
        [str(workspace_bin("cinepulse-tmdb-offline")), "--port", str(port), "--max-pages", "2"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(f"{url}/__admin/stats", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"cinepulse-tmdb-offline did not start: {(tmp_path / 'tmdb-offline.log').read_text()[-2000:]}"
                    )
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_tmdb_ingest_incremental_then_an_invalid_token_fails_without_retries(
    dagbag: Any,
    stack_resources: dict[str, Any],
    tmdb_offline: str,
    local_pods: LocalPodsFactory,
    caplog: pytest.LogCaptureFixture,
    alertmanager: LiveAlertmanager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    res = stack_resources
    changed = [19995, 285, 206647]
    httpx.post(
        f"{tmdb_offline}/__admin/changes", json={"ids": changed}, timeout=10
    ).raise_for_status()
    dag = dagbag.dags["tmdb_ingest"]
    local = local_pods("cinepulse-tmdb-fetcher", CINEPULSE_TMDB__BASE_URL=tmdb_offline)
    run = dag.test(run_conf={"load": "incremental"})
    assert _states(run) == {
        "choose_load": "success",
        "incremental_load": "success",
        "full_load": "skipped",
    }
    ran = local.ran[-1]
    assert ran.argv[0].endswith("/.venv/bin/cinepulse-tmdb-fetcher") and ran.argv[1:] == [
        "incremental"
    ]
    assert _login(ran) == "cinepulse_fetcher_login"
    # the token came from the mounted Secret file, as in the pod
    token_file = Path(ran.env["CINEPULSE_TMDB__TOKEN_FILE"])
    assert token_file.name == "token" and token_file.read_text() == TMDB_TOKEN
    stored = {r[0] for r in _query(res["dsn"], "SELECT movie_id FROM stg_movies")}
    assert set(changed) <= stored
    assert _query(res["dsn"], "SELECT mode, status FROM tmdb_fetch_runs") == [
        ("incremental", "succeeded")
    ]

    # a wrong token: exit 3, which a retry cannot fix: failed at the first try, alert raised
    # in the real Alertmanager, found through the endpoint variable the Helm values set
    monkeypatch.setenv(config.ENDPOINT_ENV["alertmanager_url"], alertmanager.url)
    local.secrets = {**local.secrets, "cinepulse-tmdb": {"token": "not-the-token"}}
    with caplog.at_level("ERROR", logger="cinepulse.alerts"):
        failed = dag.test(run_conf={"load": "incremental"})
    assert local.ran[-1].returncode == 3
    (ti,) = [t for t in failed.get_task_instances() if t.task_id == "incremental_load"]
    assert (str(ti.state), ti.try_number) == ("failed", 1)
    alert = next(
        r.getMessage() for r in caplog.records if r.getMessage().startswith("cinepulse-alert ")
    )
    payload = json.loads(alert.split(" ", 1)[1])
    assert (payload["dag_id"], payload["task_id"]) == ("tmdb_ingest", "incremental_load")
    assert "exited 3" in payload["error"]
    (got,) = [
        a
        for a in alertmanager.alerts(dag_id="tmdb_ingest", task_id="incremental_load")
        if a["annotations"]["run_id"] == failed.run_id
    ]
    assert got["labels"]["alertname"] == "CinepulseAirflowTaskFailed"
    assert got["annotations"]["description"] == payload["error"]
    assert got["annotations"]["try_number"] == "1"


def test_data_quality_reconciles_a_settled_hour(
    dagbag: Any, local_pods: LocalPodsFactory, stack_resources: dict[str, Any]
) -> None:
    local = local_pods("cinepulse-quality")
    run = dagbag.dags["data_quality"].test()
    ran = local.ran[-1]
    assert ran.argv[1] == "reconcile", ran.stderr[-3000:]
    start, end = (datetime.fromisoformat(ran.argv[i]) for i in (3, 5))
    assert end - start == timedelta(hours=1) and start.minute == start.second == 0
    assert timedelta(minutes=15) <= datetime.now(UTC) - end <= timedelta(minutes=75)
    assert _states(run) == {"reconcile": "success"}, ran.stderr[-3000:]
    assert _login(ran) == "cinepulse_quality_login"
    assert json.loads(ran.stdout.strip().splitlines()[-1])  # the command's JSON summary


def test_daily_aggregates_runs_both_spark_batches(
    dagbag: Any, local_pods: LocalPodsFactory, stack_resources: dict[str, Any]
) -> None:
    local = local_pods("cinepulse-spark-jobs")
    run = dagbag.dags["daily_aggregates"].test()
    assert _states(run) == {"aggregate_day": "success", "aggregate_changed": "success"}, [
        r.stderr[-2000:] for r in local.ran
    ]
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert [r.argv[1:] for r in local.ran] == [
        ["aggregate", "--from", yesterday, "--to", yesterday],
        ["aggregate"],
    ]
    assert {_login(r) for r in local.ran} == {"cinepulse_spark_login"}
    assert _query(
        stack_resources["dsn"], "SELECT count(*) FROM agg_runs WHERE status = 'succeeded'"
    ) == [(2,)]


def test_recommender_train_publishes_the_first_model(
    dagbag: Any, local_pods: LocalPodsFactory, stack_resources: dict[str, Any]
) -> None:
    stack_helper("movielens", stack_resources["file"], "150")
    # the ConfigMap of a small cluster: a quick model (the command and its checks are the same)
    local = local_pods(
        "cinepulse-recommender",
        CINEPULSE_MODEL__EPOCHS="10",
        CINEPULSE_MODEL__TUNE_EPOCHS="false",
        CINEPULSE_MODEL__ITEM_FEATURES='["genres"]',
        CINEPULSE_ALS__TUNE="false",
    )
    run = dagbag.dags["recommender_train"].test()
    ran = local.ran[-1]
    assert _states(run) == {"train": "success"}, ran.stderr[-3000:]
    assert ran.argv[0].endswith("/.venv/bin/cinepulse-recommender") and ran.argv[1:] == ["train"]
    assert _login(ran) == "cinepulse_recommender_login"
    summary = json.loads(ran.stdout.strip().splitlines()[-1])
    assert summary["status"] == "published" and summary["counts"]["users"] == 150


def test_streaming_guard_reads_spark_coverage_from_the_facts(
    dagbag: Any,
    local_pods: LocalPodsFactory,
    stack_resources: dict[str, Any],
    connections: None,
) -> None:
    """No heartbeat: the newest Spark fact decides, and where Spark's coverage ends (less the
    margin) is where the fallback starts."""
    import psycopg

    res = stack_resources
    now = datetime.now(UTC)
    stack_helper("archive", res["file"], "5", (now - timedelta(minutes=30)).isoformat())
    # Spark's facts, as Spark writes them (the same load step: a replay, flagged spark)
    replay = subprocess.run(
        [
            str(workspace_bin("cinepulse-fallback")),
            *("replay", "--from", (now - timedelta(hours=1)).isoformat()),
            *("--to", now.isoformat()),
        ],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(Path.home()),
            "CINEPULSE_POSTGRES__DSN": res["dsn"],
            "CINEPULSE_MONGO__URL": res["mongo_url"],
            "CINEPULSE_MONGO__DATABASE": res["mongo_database"],
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr[-2000:]

    def spark_loaded(ago: timedelta) -> datetime:
        with psycopg.connect(res["dsn"]) as conn:
            conn.execute(
                "UPDATE fact_rating SET source_flag = 'spark', ingested_at = %s",
                (now - ago,),
            )
        return now - ago

    dag = dagbag.dags["streaming_guard"]
    local = local_pods("cinepulse-fallback")
    spark_loaded(timedelta(minutes=2))  # fresh: healthy
    assert _states(dag.test())["streaming_ok"] == "success"
    assert local.ran == []

    last = spark_loaded(timedelta(minutes=20))  # older than fact_max_age_s: unhealthy
    run = dag.test(logical_date=datetime.now(UTC))
    assert _states(run)["run_fallback"] == "success"
    margin = timedelta(seconds=config.load()["streaming"]["coverage_overlap_s"])
    (start,) = _query(res["dsn"], "SELECT window_start FROM fallback.runs WHERE kind = 'fallback'")
    assert start[0] == (last - margin).replace(microsecond=0)
