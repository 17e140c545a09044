"""The DAGs as Airflow loads them: no import error, and the structure each one promises
(task ids, dependencies, schedules, retries, alerts)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pendulum
import pytest

from cinepulse_airflow import alerts, config, pods
from conftest import DAGS

CFG = config.load()
DAG_IDS = {
    "tmdb_ingest",
    "streaming_guard",
    "recommender_train",
    "daily_aggregates",
    "data_quality",
    "promote_fallback",
}
MANUAL = {"promote_fallback"}  # triggered by hand only

# task id -> the task ids directly downstream
STRUCTURE: dict[str, dict[str, set[str]]] = {
    "tmdb_ingest": {
        "choose_load": {"incremental_load", "full_load"},
        "incremental_load": set(),
        "full_load": set(),
    },
    "streaming_guard": {
        "check_streaming": {"choose"},
        "choose": {"run_fallback", "streaming_ok"},
        "run_fallback": {"record_for_promotion"},
        "record_for_promotion": set(),
        "streaming_ok": set(),
    },
    "recommender_train": {"train": set()},
    "daily_aggregates": {"aggregate_day": {"aggregate_changed"}, "aggregate_changed": set()},
    "data_quality": {"reconcile": set()},
    "promote_fallback": {"plan": {"promote"}, "promote": set()},
}


def test_dagbag_imports_every_dag_without_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_structure(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert {t.task_id: set(t.downstream_task_ids) for t in dag.tasks} == STRUCTURE[dag_id]
    if dag_id in MANUAL:
        assert type(dag.timetable).__name__ == "NullTimetable"
    else:
        # a cron trigger: a run's data interval is its trigger time (cinepulse_airflow.windows)
        assert type(dag.timetable).__name__ == "CronTriggerTimetable"
        assert dag.timetable.expression == CFG.schedule(dag_id)
        assert str(dag.timetable.timezone) == "UTC"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.start_date == pendulum.datetime(2026, 1, 1, tz="UTC")
    assert "cinepulse" in dag.tags
    assert dag.description and not dag.description.startswith(dag_id)
    assert dag.doc_md and dag.doc_md.startswith(f"{dag_id}: ")


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_every_task_retries_with_backoff_and_alerts(dagbag: Any, dag_id: str) -> None:
    for task in dagbag.dags[dag_id].tasks:
        expected = 1 if task.task_id == "check_streaming" else CFG["retries"]
        assert task.retries == expected, task.task_id
        assert task.retry_delay == timedelta(seconds=CFG["retry_delay_s"])
        assert task.retry_exponential_backoff
        assert task.max_retry_delay == timedelta(seconds=CFG["max_retry_delay_s"])
        assert alerts.on_failure in task.on_failure_callback


def test_schedules() -> None:
    assert CFG.schedule("tmdb_ingest") == "5 * * * *"  # hourly; the 03:05 run is the full load
    assert CFG.schedule("streaming_guard") == "*/5 * * * *"
    assert CFG.schedule("recommender_train") == "30 2 * * *"  # nightly
    assert CFG.schedule("daily_aggregates") == "15 1 * * *"
    assert CFG.schedule("data_quality") == "20 * * * *"


def test_fail_fast_exit_codes(dagbag: Any) -> None:
    """Exit codes a retry cannot fix end the task at once (README: each command's codes)."""
    codes = {
        (dag.dag_id, t.task_id): t.fail_fast_exit_codes
        for dag in dagbag.dags.values()
        for t in dag.tasks
        if isinstance(t, pods.CinepulsePodOperator)
    }
    assert codes == {
        ("tmdb_ingest", "incremental_load"): (2, 3),
        ("tmdb_ingest", "full_load"): (2, 3),
        ("streaming_guard", "run_fallback"): (2,),
        ("recommender_train", "train"): (2,),
        ("daily_aggregates", "aggregate_day"): (2,),
        ("daily_aggregates", "aggregate_changed"): (2,),
        ("data_quality", "reconcile"): (1, 2),
        ("promote_fallback", "promote"): (2, 3),
    }


@pytest.mark.parametrize(
    ("hour", "load", "expected"),
    [
        (3, "auto", "full_load"),
        (4, "auto", "incremental_load"),
        (0, "auto", "incremental_load"),
        (3, "incremental", "incremental_load"),
        (12, "full", "full_load"),
    ],
)
def test_tmdb_ingest_chooses_full_once_a_day(
    dagbag: Any, hour: int, load: str, expected: str
) -> None:
    choose = dagbag.dags["tmdb_ingest"].get_task("choose_load").python_callable
    at = pendulum.datetime(2026, 11, 28, hour, 5, tz="UTC")
    assert choose(params={"load": load}, data_interval_end=at) == expected


def test_dag_files_hard_code_no_cluster_names() -> None:
    """Images, namespaces, Secrets, service accounts and resources come from the config."""
    forbidden = re.compile(
        r"image\s*=|namespace\s*=|service_account|cinepulse/|cinepulse-(postgres|mongo|tmdb)\b"
        r"|secret|memory|cpu\b",
        re.IGNORECASE,
    )
    for path in DAGS.glob("*.py"):
        code = "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        )
        assert not forbidden.findall(code.split('"""', 2)[-1]), path.name


@pytest.mark.parametrize(
    ("run_ids", "dry_run", "expected"),
    [
        ("all", False, ["promote", "--all-pending", "--apply", "--by", "me"]),
        ("all", True, ["promote", "--all-pending", "--by", "me"]),
        (
            ["fallback-a", "fallback-b", "fallback-a"],
            False,
            ["promote", "fallback-a", "fallback-b", "--by", "me"],
        ),
        (["fallback-a"], True, ["promote", "fallback-a", "--dry-run", "--by", "me"]),
    ],
)
def test_promote_fallback_arguments(run_ids: Any, dry_run: bool, expected: list[str]) -> None:
    from promote_fallback import promote_arguments

    assert promote_arguments(run_ids, dry_run, "me") == expected


@pytest.mark.parametrize("run_ids", [[], "some", ["--all-pending"], ["a b"], [3], None])
def test_promote_fallback_refuses_what_is_not_run_ids(run_ids: Any) -> None:
    from promote_fallback import promote_arguments

    with pytest.raises(ValueError):
        promote_arguments(run_ids, False, "me")


def test_promote_fallback_plan_fails_without_retry_on_bad_parameters(dagbag: Any) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    plan = dagbag.dags["promote_fallback"].get_task("plan").python_callable
    context = {"run_id": "manual__1", "params": {"run_ids": ["x y"], "dry_run": False}}
    with pytest.raises(AirflowFailException, match="not fallback run ids"):
        plan(**context)
    context["params"] = {"run_ids": "all", "dry_run": True}
    assert plan(**context) == [
        "promote",
        "--all-pending",
        "--by",
        "airflow/promote_fallback/manual__1",
    ]
