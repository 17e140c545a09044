"""Each DAG on the real local cluster: its KubernetesPodOperator tasks start real pods from
the images built here, on the real kubelet, beside an installed release of the chart.

Run by the real-cluster e2e (``python -m cinepulse_devstack.cluster.e2e``, step "Airflow
DAGs: KubernetesPodOperator pods on the node"), which installs the release, runs the demo's
data through it, then runs this module with ``pytest -m cluster`` and the cluster's facts in
``CINEPULSE_E2E_CLUSTER`` (JSON, see :class:`Cluster`). ``make test-airflow`` deselects it
(``-m "not cluster"``); run alone without the variable, it fails saying so.

The DAGs run with ``dag.test()`` (the tasks in this process) and the documented overrides
only: the ``cinepulse_config`` Variable names the release's namespace, Secrets, ConfigMap and
ServiceAccount, the images as the node has them (``localhost/``, never pulled) and smaller CPU
requests (the node has 2 cores); the Connection ``kubernetes_default`` points at the cluster's
kubeconfig. Each test asserts what only a real pod could have done: the task's pod (its XCom
``pod_name``) has the kubelet's events (the image pulled from the node's store, the container
started), and, for the commands that write one, their row in the warehouse written after
the test began (the reconciliation writes none: its pod's events and exit code are the proof).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

pytestmark = pytest.mark.cluster

ENV = "CINEPULSE_E2E_CLUSTER"
#: pods' CPU requests small enough for the e2e's node beside the release (memory as default)
SMALL_CPU = {"requests": {"cpu": "100m"}}


@dataclass(frozen=True)
class Cluster:
    """What the e2e hands over (``CINEPULSE_E2E_CLUSTER``)."""

    kubeconfig: str
    #: the kubectl the e2e uses (make kube-tools)
    kubectl: str
    namespace: str
    release: str
    #: the ConfigMap the pods read (the chart's, plus the offline TMDB server's in-cluster URL)
    config_map: str
    #: the TMDB token Secret (key ``token``)
    tmdb_secret: str
    #: the owner's DSN, reachable from this machine (a port-forward): the tests' checks only
    owner_dsn: str
    #: the quality login's DSN from this machine: the Connection streaming_guard reads with
    quality_dsn: str

    @classmethod
    def from_env(cls) -> Cluster:
        raw = os.environ.get(ENV)
        if not raw:
            pytest.fail(
                f"{ENV} is not set: these tests run inside the real-cluster e2e "
                "(python -m cinepulse_devstack.cluster.e2e), which installs the release first"
            )
        return cls(**json.loads(raw))

    def name(self, component: str) -> str:
        return f"{self.release}-cinepulse-{component}"

    def airflow_config(self) -> dict[str, Any]:
        """The ``cinepulse_config`` Variable for this release (cinepulse_airflow.config)."""
        mongo = {"secret": self.name("mongodb"), "key": "url", "env": "CINEPULSE_MONGO__URL"}
        logins = self.name("postgresql-logins")
        secrets: dict[str, Any] = {
            f"postgres-{s}": {"secret": logins, "key": f"{s}-dsn", "env": "CINEPULSE_POSTGRES__DSN"}
            for s in ("fetcher", "fallback", "spark", "recommender", "quality")
        }
        secrets.update({f"mongo-{s}": mongo for s in ("fetcher", "fallback", "quality")})
        secrets["tmdb"] = {"secret": self.tmdb_secret}
        components = ("tmdb-fetcher", "pandas-fallback", "spark-jobs", "recommender", "quality")
        return {
            "namespace": self.namespace,
            "release": self.release,
            "image_registry": "localhost/",
            "image_pull_policy": "Never",
            "config_map": self.config_map,
            "secrets": secrets,
            "components": {
                c: {"service_account": self.name("jobs"), "resources": SMALL_CPU}
                for c in components
            },
            "prometheus_url": "",  # streaming_guard: forced by the Variable below
            "alertmanager_url": "",
            # a failure fails the test at once (no backoff); a pod that cannot start (an
            # image missing on the node) is reported within minutes
            "retries": 0,
            "startup_timeout_s": 240,
        }


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster.from_env()
    os.environ["AIRFLOW_VAR_CINEPULSE_CONFIG"] = json.dumps(c.airflow_config())
    os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = json.dumps(
        {
            "conn_type": "kubernetes",
            "extra": {"kube_config_path": c.kubeconfig, "namespace": c.namespace},
        }
    )
    os.environ["AIRFLOW_CONN_CINEPULSE_POSTGRES"] = c.quality_dsn
    yield c
    for name in (
        "AIRFLOW_VAR_CINEPULSE_CONFIG",
        "AIRFLOW_CONN_KUBERNETES_DEFAULT",
        "AIRFLOW_CONN_CINEPULSE_POSTGRES",
    ):
        os.environ.pop(name, None)


@pytest.fixture(scope="module")
def dags(cluster: Cluster, airflow_db: None) -> Any:
    """The DAGs parsed with this cluster's Variable (the session's ``dagbag`` has the
    defaults)."""
    from airflow.dag_processing.dagbag import DagBag

    from conftest import DAGS

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.dags


def _query(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _kubectl(cluster: Cluster, *args: str) -> str:
    done = subprocess.run(
        [cluster.kubectl, "--kubeconfig", cluster.kubeconfig, "-n", cluster.namespace, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _pod_of(run: Any, task_id: str) -> str:
    """The pod KubernetesPodOperator started for ``task_id`` (its XCom)."""
    (ti,) = [t for t in run.get_task_instances() if t.task_id == task_id]
    name = ti.xcom_pull(task_ids=task_id, key="pod_name")
    assert name, f"{task_id}: no pod_name XCom, so no pod was started"
    return str(name)


def _kubelet_ran(cluster: Cluster, pod: str, image: str) -> str:
    """The kubelet's events for ``pod``: its container started from ``image`` (the node's
    own copy: pull policy Never). Events outlive the pod, which the operator deletes once it
    succeeded. Returns the events, for the report."""
    selector = f"involvedObject.kind=Pod,involvedObject.name={pod}"
    for _ in range(30):
        found = _kubectl(cluster, "get", "events", "-o", "json", "--field-selector", selector)
        events = json.loads(found)["items"]
        reasons = {e["reason"]: e.get("message", "") for e in events}
        if "Started" in reasons:
            break
        time.sleep(1)
    assert "Started" in reasons, f"pod {pod}: no Started event; events: {reasons}"
    pulled = reasons.get("Pulled", "")
    assert f"localhost/cinepulse/{image}:" in pulled, f"pod {pod}: {reasons}"
    return f"{pod}: " + ", ".join(sorted(reasons))


def _since() -> datetime:
    return datetime.now(UTC)


def test_tmdb_ingest_runs_the_fetcher_against_the_in_cluster_tmdb_service(
    cluster: Cluster, dags: Any
) -> None:
    since = _since()
    run = dags["tmdb_ingest"].test(run_conf={"load": "incremental"})
    assert _states(run) == {
        "choose_load": "success",
        "incremental_load": "success",
        "full_load": "skipped",
    }
    print(_kubelet_ran(cluster, _pod_of(run, "incremental_load"), "tmdb-fetcher"))
    runs = _query(
        cluster.owner_dsn,
        "SELECT mode, status FROM tmdb_fetch_runs WHERE started_at >= %s",
        since,
    )
    assert runs == [("incremental", "succeeded")]


def test_daily_aggregates_runs_spark_in_its_pod(cluster: Cluster, dags: Any) -> None:
    since = _since()
    run = dags["daily_aggregates"].test()
    assert _states(run) == {"aggregate_day": "success", "aggregate_changed": "success"}
    for task in ("aggregate_day", "aggregate_changed"):
        print(_kubelet_ran(cluster, _pod_of(run, task), "spark-jobs"))
    done = _query(
        cluster.owner_dsn,
        "SELECT status FROM agg_runs WHERE started_at >= %s ORDER BY run_id",
        since,
    )
    assert done == [("succeeded",), ("succeeded",)]


def test_data_quality_reconciles_in_its_pod(cluster: Cluster, dags: Any) -> None:
    run = dags["data_quality"].test()
    assert _states(run) == {"reconcile": "success"}
    print(_kubelet_ran(cluster, _pod_of(run, "reconcile"), "quality"))


def test_recommender_train_trains_on_the_warehouse_in_its_pod(cluster: Cluster, dags: Any) -> None:
    since = _since()
    run = dags["recommender_train"].test()
    assert _states(run) == {"train": "success"}
    print(_kubelet_ran(cluster, _pod_of(run, "train"), "recommender"))
    models = _query(
        cluster.owner_dsn,
        "SELECT status FROM recsys.models WHERE created_at >= %s",
        since,
    )
    assert len(models) == 1 and models[0][0] in ("published", "rejected"), models


def test_streaming_guard_then_promote_fallback_on_the_release(cluster: Cluster, dags: Any) -> None:
    """Forced (the Variable), the guard runs the pandas fallback in a pod over the last day
    of the release's raw archive; promote_fallback then promotes it in another pod (Spark's
    facts, already there, win: nothing is inserted twice)."""
    from airflow.models.variable import Variable

    from cinepulse_airflow import streaming

    Variable.delete(streaming.OUTAGE_VARIABLE)
    # the first run covers the last day, the release's events; a later one (a kept cluster,
    # run again) starts where the last run ended
    first = _query(cluster.owner_dsn, "SELECT count(*) FROM fallback.runs")[0][0] == 0
    os.environ["AIRFLOW_VAR_USE_PANDAS_FALLBACK"] = "true"
    try:
        guard = dags["streaming_guard"].test()
    finally:
        os.environ.pop("AIRFLOW_VAR_USE_PANDAS_FALLBACK", None)
    assert _states(guard) == {
        "check_streaming": "success",
        "choose": "success",
        "run_fallback": "success",
        "record_for_promotion": "success",
        "streaming_ok": "skipped",
    }
    print(_kubelet_ran(cluster, _pod_of(guard, "run_fallback"), "pandas-fallback"))
    (run_id, status, events) = _query(
        cluster.owner_dsn,
        "SELECT run_id, status, events_read FROM fallback.runs WHERE requested_by = %s",
        f"airflow/streaming_guard/{guard.run_id}",
    )[0]
    assert status == "succeeded", (run_id, status, events)
    assert events > 0 or not first, f"{run_id} read no event of the release's last day"
    facts_before = _query(cluster.owner_dsn, "SELECT count(*) FROM fact_rating")[0][0]

    promote = dags["promote_fallback"].test(run_conf={"run_ids": [run_id]})
    assert _states(promote) == {"plan": "success", "promote": "success"}
    print(_kubelet_ran(cluster, _pod_of(promote, "promote"), "pandas-fallback"))
    assert _query(
        cluster.owner_dsn, "SELECT status FROM fallback.runs WHERE run_id = %s", run_id
    ) == [("promoted",)]
    # the release's Spark had modelled every event already: the promotion adds none twice
    assert _query(cluster.owner_dsn, "SELECT count(*) FROM fact_rating")[0][0] == facts_before
    Variable.delete(streaming.OUTAGE_VARIABLE)
