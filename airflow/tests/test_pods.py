"""Every pod task's rendered pod spec (no cluster: the operator's hook is replaced by an
object that says it is not in a cluster): image, command and arguments, env from Secrets,
the ConfigMap, resources, service account and the security context."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowFailException

from cinepulse_airflow import config, pods

CFG = config.load()
AT = pendulum.datetime(2026, 11, 28, 3, 5, 42, tz="UTC")  # a run's trigger time
STREAMING_DECISION = {
    "window_start": "2026-11-28T02:00:00+00:00",
    "window_end": "2026-11-28T03:05:00+00:00",
    "extend_run_id": None,
}
PROMOTE_PLAN = ["promote", "--all-pending", "--apply", "--by", "airflow/promote_fallback/m"]
XCOMS: dict[str, Any] = {"check_streaming": STREAMING_DECISION, "plan": PROMOTE_PLAN}

# (dag, task) -> (component, rendered arguments)
PODS: dict[tuple[str, str], tuple[str, list[str]]] = {
    ("tmdb_ingest", "incremental_load"): ("tmdb-fetcher", ["incremental"]),
    ("tmdb_ingest", "full_load"): ("tmdb-fetcher", ["full"]),
    ("streaming_guard", "run_fallback"): (
        "pandas-fallback",
        [
            "run",
            "--from",
            "2026-11-28T02:00:00+00:00",
            "--to",
            "2026-11-28T03:05:00+00:00",
            "--extend",
            "",
            "--by",
            "airflow/streaming_guard/scheduled__2026-11-28T03:05:42+00:00",
        ],
    ),
    ("recommender_train", "train"): ("recommender", ["train"]),
    ("daily_aggregates", "aggregate_day"): (
        "spark-jobs",
        ["aggregate", "--from", "2026-11-27", "--to", "2026-11-27"],
    ),
    ("daily_aggregates", "aggregate_changed"): ("spark-jobs", ["aggregate"]),
    ("data_quality", "reconcile"): (
        "quality",
        ["reconcile", "--from", "2026-11-28T01:00:00+00:00", "--to", "2026-11-28T02:00:00+00:00"],
    ),
    # the arguments the plan task returned
    ("promote_fallback", "promote"): ("pandas-fallback", PROMOTE_PLAN),
}
LOGINS = "cinepulse-postgresql-logins"  # the chart's generated Secret (release "cinepulse")
MONGO = {"CINEPULSE_MONGO__URL": ("cinepulse-mongodb", "url")}
# each component's PostgreSQL DSN is its service's own login (migration 0012), never the owner's
SECRET_ENV = {
    "tmdb-fetcher": {"CINEPULSE_POSTGRES__DSN": (LOGINS, "fetcher-dsn"), **MONGO},
    "pandas-fallback": {"CINEPULSE_POSTGRES__DSN": (LOGINS, "fallback-dsn"), **MONGO},
    "spark-jobs": {"CINEPULSE_POSTGRES__DSN": (LOGINS, "spark-dsn")},
    "recommender": {"CINEPULSE_POSTGRES__DSN": (LOGINS, "recommender-dsn")},
    "quality": {"CINEPULSE_POSTGRES__DSN": (LOGINS, "quality-dsn"), **MONGO},
}


def _context(dag: Any) -> dict[str, Any]:
    from airflow.sdk.execution_time import macros

    def xcom_pull(task_ids: str, **_: Any) -> Any:
        return XCOMS[task_ids]

    ti = SimpleNamespace(xcom_pull=xcom_pull)
    return {
        "dag": dag,
        "ti": ti,
        "run_id": f"scheduled__{AT.isoformat()}",
        "data_interval_start": AT,
        "data_interval_end": AT,
        "logical_date": AT,
        "macros": macros,
        **(dag.user_defined_macros or {}),
    }


def render(dagbag: Any, dag_id: str, task_id: str) -> Any:
    """The pod the task would create, its templates rendered for the run at AT."""
    task = copy.deepcopy(dagbag.dags[dag_id].get_task(task_id))
    task.render_template_fields(_context(dagbag.dags[dag_id]))
    task.hook = SimpleNamespace(is_in_cluster=False)
    return task.build_pod_request_obj()


def test_every_pod_task_is_listed(dagbag: Any) -> None:
    found = {
        (dag.dag_id, t.task_id)
        for dag in dagbag.dags.values()
        for t in dag.tasks
        if isinstance(t, pods.CinepulsePodOperator)
    }
    assert found == set(PODS)


@pytest.mark.parametrize(("dag_id", "task_id"), sorted(PODS))
def test_rendered_pod(dagbag: Any, dag_id: str, task_id: str) -> None:
    component, arguments = PODS[(dag_id, task_id)]
    comp = CFG.component(component)
    pod = render(dagbag, dag_id, task_id)
    spec = pod.spec
    (container,) = spec.containers
    assert pod.metadata.namespace == "cinepulse"
    assert pod.metadata.labels["app.kubernetes.io/component"] == component
    # the chart's NetworkPolicies admit exactly these labels as the release's batch jobs
    assert pod.metadata.labels["app.kubernetes.io/instance"] == "cinepulse"
    assert pod.metadata.labels["cinepulse.io/network"] == "jobs"
    assert pod.metadata.labels["airflow_kpo_in_cluster"] == "False"
    assert container.image == f"cinepulse/{component}:0.1.0"
    assert container.image_pull_policy == "IfNotPresent"
    assert container.command == [comp["command"]]
    assert container.args == arguments
    # env: Secrets by reference only, never a value
    secret_env = {
        e.name: (e.value_from.secret_key_ref.name, e.value_from.secret_key_ref.key)
        for e in container.env
        if e.value_from
    }
    assert secret_env == SECRET_ENV[component]
    plain = {e.name: e.value for e in container.env if not e.value_from}
    assert plain["HOME"] == "/tmp"
    assert not any("DSN" in name or "URL" in name for name in plain)
    assert [s.config_map_ref.name for s in container.env_from] == ["cinepulse-config"]
    # resources and identity
    assert container.resources.requests == comp["resources"]["requests"]
    assert container.resources.limits == comp["resources"]["limits"]
    assert spec.service_account_name == comp["service_account"]
    assert spec.automount_service_account_token is False
    assert spec.restart_policy == "Never"
    # security context: restricted, read-only root file system, scratch emptyDir at /tmp
    sc = container.security_context
    assert sc.run_as_non_root is True and sc.run_as_user == 10001
    assert sc.allow_privilege_escalation is False and sc.privileged is False
    assert sc.capabilities.drop == ["ALL"] and not sc.capabilities.add
    assert sc.seccomp_profile.type == "RuntimeDefault"
    assert sc.read_only_root_filesystem is True
    psc = spec.security_context
    assert psc.run_as_non_root is True and psc.run_as_user == 10001 and psc.fs_group == 10001
    assert psc.seccomp_profile.type == "RuntimeDefault"
    mounts = {m.mount_path: m for m in container.volume_mounts}
    volumes = {v.name: v for v in spec.volumes}
    assert volumes[mounts["/tmp"].name].empty_dir.size_limit == "1Gi"


def test_tmdb_token_is_a_mounted_secret_file(dagbag: Any) -> None:
    pod = render(dagbag, "tmdb_ingest", "incremental_load")
    (container,) = pod.spec.containers
    env = {e.name: e.value for e in container.env if not e.value_from}
    assert env["CINEPULSE_TMDB__TOKEN_FILE"] == "/var/run/secrets/cinepulse/tmdb/token"
    mount = next(
        m for m in container.volume_mounts if m.mount_path == "/var/run/secrets/cinepulse/tmdb"
    )
    assert mount.read_only is True
    volume = next(v for v in pod.spec.volumes if v.name == mount.name)
    assert volume.secret.secret_name == "cinepulse-tmdb"


def test_pods_follow_the_configuration(dagbag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another namespace, registry, service account and resources: no DAG file changes."""
    cfg = config.load(
        {
            "namespace": "cinepulse-staging",
            "image_registry": "registry.example.com/",
            "image_pull_secrets": ["regcred"],
            "run_as_user": 2000,
            "secrets": {"postgres-recommender": {"secret": "pg-app"}},
            "components": {
                "recommender": {
                    "image": "cinepulse/recommender:1.2.3",
                    "service_account": "recommender-trainer",
                    "resources": {
                        "requests": {"cpu": "4", "memory": "8Gi"},
                        "limits": {"memory": "8Gi"},
                    },
                }
            },
        }
    )
    op = pods.pod_task(cfg, task_id="train", component="recommender", arguments=["train"])
    op.hook = SimpleNamespace(is_in_cluster=False)
    pod = op.build_pod_request_obj()
    (container,) = pod.spec.containers
    assert pod.metadata.namespace == "cinepulse-staging"
    assert container.image == "registry.example.com/cinepulse/recommender:1.2.3"
    assert [s.name for s in pod.spec.image_pull_secrets] == ["regcred"]
    assert pod.spec.service_account_name == "recommender-trainer"
    assert container.resources.requests == {"cpu": "4", "memory": "8Gi"}
    assert container.security_context.run_as_user == 2000
    (dsn,) = [e for e in container.env if e.name == "CINEPULSE_POSTGRES__DSN"]
    assert (dsn.value_from.secret_key_ref.name, dsn.value_from.secret_key_ref.key) == (
        "pg-app",
        "recommender-dsn",  # only the name overridden: the key kept
    )


def test_an_external_postgresql_points_every_login_at_its_own_secret() -> None:
    """An operator's PostgreSQL (no chart-made logins Secret): the Variable names a Secret
    and key per login, and each component's pods read exactly its own."""
    keys = {
        "fetcher": "fetch",
        "fallback": "fb",
        "spark": "sp",
        "recommender": "rec",
        "quality": "qa",
    }
    cfg = config.load(
        {
            "secrets": {
                f"postgres-{service}": {"secret": "pg-logins", "key": key}
                for service, key in keys.items()
            }
        }
    )
    expected = {
        "tmdb-fetcher": "fetch",
        "pandas-fallback": "fb",
        "spark-jobs": "sp",
        "recommender": "rec",
        "quality": "qa",
    }
    for component, key in expected.items():
        op = pods.pod_task(cfg, task_id="t", component=component, arguments=[])
        op.hook = SimpleNamespace(is_in_cluster=False)
        (container,) = op.build_pod_request_obj().spec.containers
        refs = {
            (e.value_from.secret_key_ref.name, e.value_from.secret_key_ref.key)
            for e in container.env
            if e.name == "CINEPULSE_POSTGRES__DSN"
        }
        assert refs == {("pg-logins", key)}, component


def test_fail_fast_only_for_listed_exit_codes() -> None:
    assert isinstance(pods.fail_fast_error("t", 3, (2, 3)), AirflowFailException)
    assert pods.fail_fast_error("t", 4, (2, 3)) is None
    assert pods.fail_fast_error("t", None, (2, 3)) is None
    terminated = SimpleNamespace(state=SimpleNamespace(terminated=SimpleNamespace(exit_code=3)))
    remote = SimpleNamespace(
        status=SimpleNamespace(
            container_statuses=[SimpleNamespace(name="base", **vars(terminated))]
        )
    )
    assert pods.exit_code_of(remote, "base") == 3
    assert pods.exit_code_of(remote, "other") is None
    assert pods.exit_code_of(None, "base") is None


def test_operator_turns_a_listed_exit_code_into_no_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.exceptions import AirflowException

    def failed(self: Any, pod: Any, remote_pod: Any, *args: Any, **kwargs: Any) -> None:
        raise AirflowException("Pod x returned a failure.")

    monkeypatch.setattr(KubernetesPodOperator, "cleanup", failed)
    op = pods.pod_task(
        CFG,
        task_id="incremental_load",
        component="tmdb-fetcher",
        arguments=["incremental"],
        fail_fast_exit_codes=(2, 3),
    )

    def remote(code: int) -> Any:
        state = SimpleNamespace(terminated=SimpleNamespace(exit_code=code))
        status = SimpleNamespace(name=op.base_container_name, state=state)
        return SimpleNamespace(status=SimpleNamespace(container_statuses=[status]))

    with pytest.raises(AirflowFailException, match="exited 3"):
        op.cleanup(None, remote(3))
    with pytest.raises(AirflowException, match="returned a failure") as caught:
        op.cleanup(None, remote(4))
    assert not isinstance(caught.value, AirflowFailException)
