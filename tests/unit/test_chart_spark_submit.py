"""The Spark jobs without the Spark operator (``spark.launcher=submit``): the streaming driver
as a Deployment and the aggregates' as a CronJob, each running a client-mode ``spark-submit
--master k8s://``. Both launchers render the same description of a job, so the spark-submit
configuration is asserted equal to the SparkApplication's fields of the default rendering;
the pods (and the executors' pod template) are Pod Security "restricted"; the
NetworkPolicy's Spark ports are the configured ones. Nothing here needs a cluster."""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from cinepulse_devstack import chart

try:
    chart.tool("helm")
    chart.tool("kubeconform")
except chart.ChartToolMissing as exc:  # make setup builds them
    pytest.skip(str(exc), allow_module_level=True)

SCENARIOS = {p.name.removesuffix("-values.yaml"): p for p in chart.scenarios()}
DEFAULT = SCENARIOS["default"]
SUBMIT = ["spark.launcher=submit"]
MASTER = "k8s://https://kubernetes.default.svc:443"
#: volume types Pod Security "restricted" allows
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
#: what a client-mode driver's container has beyond the SparkApplication's driver
DRIVER_ONLY_ENV = {
    "SPARK_DRIVER_POD_NAME",
    "SPARK_DRIVER_POD_IP",
    "SPARK_DRIVER_BIND_ADDRESS",
    "SPARK_LOCAL_DIRS",
}


def _render(values: list[Path], set_values: list[str] | None = None) -> list[dict[str, Any]]:
    r = chart.render([DEFAULT, *values], set_values or [])
    assert r.returncode == 0, r.stderr
    return chart.documents(r.stdout)


@pytest.fixture(scope="module")
def operator_docs() -> list[dict[str, Any]]:
    return _render([])


@pytest.fixture(scope="module")
def submit_docs() -> list[dict[str, Any]]:
    return _render([], SUBMIT)


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in found])
    return found[0]


def _driver_pod(submit: dict[str, Any]) -> dict[str, Any]:
    """The pod template (metadata + spec) of the stream's Deployment or the CronJob."""
    if submit["kind"] == "CronJob":
        return submit["spec"]["jobTemplate"]["spec"]["template"]
    return submit["spec"]["template"]


def _spark_workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The submit launcher's driver workloads (Deployment, CronJob)."""
    return [
        d
        for d in docs
        if d["kind"] in ("Deployment", "CronJob")
        and d["metadata"]["labels"]["app.kubernetes.io/component"].startswith("spark-")
    ]


def _conf(args: list[str]) -> dict[str, str]:
    """``--conf k=v`` pairs of a spark-submit command line."""
    out = {}
    for flag, value in itertools.pairwise(args):
        if flag == "--conf":
            key, _, v = value.partition("=")
            assert key not in out, f"--conf {key} given twice"
            out[key] = v
    return out


def _executor_template(docs: list[dict[str, Any]], pod: dict[str, Any]) -> dict[str, Any]:
    """The executor pod template the driver reads: its ConfigMap, through the driver's mount."""
    container = pod["spec"]["containers"][0]
    path = _conf(container["args"])["spark.kubernetes.executor.podTemplateFile"]
    directory, _, key = path.rpartition("/")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    cm = _one(docs, "ConfigMap", volume["configMap"]["name"])
    return yaml.safe_load(cm["data"][key])


def _pairs(
    operator_docs: list[dict[str, Any]], submit_docs: list[dict[str, Any]]
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(job, the SparkApplication spec, the submit launcher's workload) per job."""
    stream = _one(operator_docs, "SparkApplication")["spec"]
    aggregates = _one(operator_docs, "ScheduledSparkApplication")["spec"]["template"]
    return [
        ("stream", stream, _one(submit_docs, "Deployment", "cp-cinepulse-spark-stream")),
        ("aggregates", aggregates, _one(submit_docs, "CronJob", "cp-cinepulse-spark-aggregates")),
    ]


def _names(env: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in env]


# ------------------------------------------------------------------------------ what is rendered


def test_operator_is_the_default(operator_docs: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in operator_docs}
    assert {"SparkApplication", "ScheduledSparkApplication"} <= kinds
    assert _spark_workloads(operator_docs) == []
    assert not [d for d in operator_docs if d["metadata"]["name"].endswith("-executor")]


def test_submit_renders_workloads_instead_of_spark_applications(
    submit_docs: list[dict[str, Any]],
) -> None:
    kinds = {d["kind"] for d in submit_docs}
    assert not {"SparkApplication", "ScheduledSparkApplication"} & kinds
    _one(submit_docs, "Deployment", "cp-cinepulse-spark-stream")
    _one(submit_docs, "CronJob", "cp-cinepulse-spark-aggregates")
    # shared by both launchers: the driver's ServiceAccount and Role, the checkpoints, scraping
    for kind, name in [
        ("ServiceAccount", "cp-cinepulse-spark"),
        ("Role", "cp-cinepulse-spark"),
        ("PersistentVolumeClaim", "cp-cinepulse-spark-stream-checkpoints"),
        ("PodMonitor", "cp-cinepulse-spark"),
    ]:
        _one(submit_docs, kind, name)


def test_submit_objects_are_valid_and_strict(submit_docs: list[dict[str, Any]]) -> None:
    """kubeconform (strict) on the workloads and on the executor pod templates as Pods."""
    objects = [d for d in submit_docs if d["kind"] in ("Deployment", "CronJob", "ConfigMap")]
    for d in _spark_workloads(submit_docs):
        objects.append(_executor_template(submit_docs, _driver_pod(d)))
    r = chart.kubeconform(yaml.safe_dump_all(objects))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Invalid: 0, Errors: 0" in r.stdout


def test_stream_driver_is_one_recreated_always_restarting_pod(
    submit_docs: list[dict[str, Any]],
) -> None:
    dep = _one(submit_docs, "Deployment", "cp-cinepulse-spark-stream")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}  # never two drivers at once
    pod = dep["spec"]["template"]
    assert pod["spec"].get("restartPolicy", "Always") == "Always"
    assert "checksum/config" in pod["metadata"]["annotations"]
    # the selector sees the driver only (the executors carry the job's labels too)
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector["spark-role"] == "driver"
    assert selector.items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    args = container["args"]
    assert args[:3] == ["driver", "--master", MASTER]  # the image's client-mode entrypoint
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    claim = volumes[mounts["/checkpoints"]]["persistentVolumeClaim"]["claimName"]
    _one(submit_docs, "PersistentVolumeClaim", claim)


def test_aggregates_driver_is_a_forbid_cronjob_on_the_same_schedule(
    operator_docs: list[dict[str, Any]], submit_docs: list[dict[str, Any]]
) -> None:
    cron = _one(submit_docs, "CronJob", "cp-cinepulse-spark-aggregates")
    scheduled = _one(operator_docs, "ScheduledSparkApplication")
    assert cron["spec"]["schedule"] == scheduled["spec"]["schedule"]
    assert cron["spec"]["concurrencyPolicy"] == scheduled["spec"]["concurrencyPolicy"] == "Forbid"
    retries = scheduled["spec"]["template"]["restartPolicy"]["onFailureRetries"]
    assert cron["spec"]["jobTemplate"]["spec"]["backoffLimit"] == retries
    pod = _driver_pod(cron)
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"][0]["args"][:3] == ["driver", "--master", MASTER]


# ------------------------------------------------------------------------------ one description


def test_submit_confs_equal_the_spark_applications(
    operator_docs: list[dict[str, Any]], submit_docs: list[dict[str, Any]]
) -> None:
    for job, app, workload in _pairs(operator_docs, submit_docs):
        pod = _driver_pod(workload)
        (container,) = pod["spec"]["containers"]
        conf = _conf(container["args"])
        driver, executor = app["driver"], app["executor"]
        # the same image, for the driver container and the executors
        assert container["image"] == conf["spark.kubernetes.container.image"] == app["image"]
        assert conf["spark.kubernetes.container.image.pullPolicy"] == app["imagePullPolicy"]
        assert container["imagePullPolicy"] == app["imagePullPolicy"]
        # the same application and arguments, last on the command line
        n = len(app["arguments"])
        assert container["args"][-n - 1 :] == [app["mainApplicationFile"], *app["arguments"]]
        # every sparkConf of the SparkApplication, unchanged
        assert app["sparkConf"].items() <= conf.items(), job
        # driver and executor sizing
        assert conf["spark.driver.cores"] == str(driver["cores"])
        assert conf["spark.driver.memory"] == driver["memory"]
        assert conf["spark.executor.instances"] == str(executor["instances"])
        assert conf["spark.executor.cores"] == str(executor["cores"])
        assert conf["spark.executor.memory"] == executor["memory"]
        assert conf["spark.kubernetes.executor.request.cores"] == str(
            executor.get("coreRequest", executor["cores"])
        )
        requests = container["resources"]["requests"]
        assert str(requests["cpu"]) == str(driver.get("coreRequest", driver["cores"]))
        # the pod memory Spark would give a cluster-mode driver: heap + overhead
        heap = int(driver["memory"].removesuffix("g")) * 1024
        factor = float(app["sparkConf"]["spark.driver.memoryOverheadFactor"])
        expected = f"{heap + max(384, math.floor(heap * factor))}Mi"
        assert requests["memory"] == container["resources"]["limits"]["memory"] == expected
        # the driver's identity and the API server
        assert pod["spec"]["serviceAccountName"] == driver["serviceAccount"]
        assert pod["spec"]["automountServiceAccountToken"] is True
        assert conf["spark.kubernetes.namespace"] == chart.NAMESPACE
        assert conf["spark.kubernetes.driver.pod.name"] == "$(SPARK_DRIVER_POD_NAME)"
        assert conf["spark.driver.host"] == "$(SPARK_DRIVER_POD_IP)"
        env = {e["name"]: e for e in container["env"]}
        assert env["SPARK_DRIVER_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == (
            "metadata.name"
        )
        assert env["SPARK_DRIVER_POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        # the same env (values and Secret references), labels, volumes and mounts
        assert container["env"][: len(driver["env"])] == driver["env"], job
        assert set(env) - set(_names(driver["env"])) == DRIVER_ONLY_ENV
        assert driver["labels"].items() <= pod["metadata"]["labels"].items()
        assert pod["metadata"]["labels"]["spark-role"] == "driver"
        assert all(v in pod["spec"]["volumes"] for v in app["volumes"]), job
        assert all(m in container["volumeMounts"] for m in driver["volumeMounts"]), job
        assert [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"] == [
            p["containerPort"] for p in driver["ports"] if p["name"] == "metrics"
        ]
        template = _executor_template(submit_docs, pod)
        (ex,) = template["spec"]["containers"]
        assert conf["spark.kubernetes.executor.podTemplateContainerName"] == ex["name"]
        assert ex["env"] == executor["env"], job
        assert template["metadata"]["labels"] == executor["labels"]
        assert all(v in template["spec"]["volumes"] for v in app["volumes"]), job
        assert all(m in ex["volumeMounts"] for m in executor["volumeMounts"]), job


def test_core_requests_follow_the_values() -> None:
    """coreRequest (e.g. 200m on a small node) reaches the SparkApplication and spark-submit."""
    small = [
        f"spark.{j}.{r}.coreRequest=200m"
        for j in ("stream", "aggregates")
        for r in ("driver", "executor")
    ]
    operator, submit = _render([], small), _render([], [*small, *SUBMIT])
    for _, app, workload in _pairs(operator, submit):
        assert app["driver"]["coreRequest"] == app["executor"]["coreRequest"] == "200m"
        container = _driver_pod(workload)["spec"]["containers"][0]
        assert container["resources"]["requests"]["cpu"] == "200m"
        assert _conf(container["args"])["spark.kubernetes.executor.request.cores"] == "200m"
    # the scenario of a small node (ci/submit-values.yaml) says the same
    workloads = _spark_workloads(_render([SCENARIOS["submit"]]))
    assert len(workloads) == 2
    for d in workloads:
        container = _driver_pod(d)["spec"]["containers"][0]
        assert container["resources"]["requests"]["cpu"] == "200m"


# ------------------------------------------------------------------------------ security


def _assert_restricted(name: str, spec: dict[str, Any]) -> None:
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True, name
    assert pod["runAsUser"] == 10001, name
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
    assert not spec.get("hostNetwork") and not spec.get("hostPID"), name
    volumes = {v["name"]: v for v in spec["volumes"]}
    for v in volumes.values():
        kinds = set(v) - {"name"}
        assert kinds <= RESTRICTED_VOLUMES, (name, v)
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert sc.get("capabilities", {}).get("add") is None, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert not sc.get("privileged"), name
        assert all("hostPort" not in p for p in c.get("ports", [])), name
        mounts = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
        # writable places on a read-only root: /tmp and Spark's local dirs, on emptyDirs
        assert "emptyDir" in mounts["/tmp"], name  # noqa: S108 - a mount path
        local = [m for m in c["volumeMounts"] if m["name"].startswith("spark-local-dir-")]
        assert local and all("emptyDir" in volumes[m["name"]] for m in local), name


def test_driver_pods_and_executor_templates_are_restricted(
    submit_docs: list[dict[str, Any]],
) -> None:
    workloads = _spark_workloads(submit_docs)
    assert len(workloads) == 2
    for d in workloads:
        pod = _driver_pod(d)
        _assert_restricted(d["metadata"]["name"], pod["spec"])
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        local = env["SPARK_LOCAL_DIRS"]["value"]
        assert local in {m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
        template = _executor_template(submit_docs, pod)
        assert template["kind"] == "Pod"
        _assert_restricted(f"{d['metadata']['name']} executor", template["spec"])
        assert template["spec"]["automountServiceAccountToken"] is False
        # executors fetch the application's jars into their working directory: it must be
        # a writable volume (the image's WORKDIR is on the read-only root)
        executor = template["spec"]["containers"][0]
        assert executor["workingDir"] in {m["mountPath"] for m in executor["volumeMounts"]}


# ------------------------------------------------------------------------------ network


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        if e["operator"] == "In" and labels.get(e["key"]) not in e["values"]:
            return False
        if e["operator"] == "Exists" and e["key"] not in labels:
            return False
    return True


@pytest.mark.parametrize(
    "ports", [[], ["spark.ports.driver=7100", "spark.ports.blockManager=7101"]]
)
def test_network_policy_ports_match_the_confs(ports: list[str]) -> None:
    docs = _render([], [*SUBMIT, *ports])
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    spark = policies["cp-cinepulse-spark-ingress"]
    monitor = _one(docs, "PodMonitor", "cp-cinepulse-spark")["spec"]["selector"]
    workloads = _spark_workloads(docs)
    assert len(workloads) == 2
    for d in workloads:
        pod = _driver_pod(d)
        (container,) = pod["spec"]["containers"]
        conf = _conf(container["args"])
        wanted = {int(conf["spark.driver.port"]), int(conf["spark.blockManager.port"])}
        assert {p["containerPort"] for p in container["ports"] if p["name"] != "metrics"} == wanted
        # executors <-> driver on exactly those ports
        # the Spark pods among themselves (Prometheus' peer has a namespaceSelector too)
        [peers] = [r for r in spark["ingress"] if "namespaceSelector" not in r["from"][0]]
        assert {p["port"] for p in peers["ports"]} == wanted
        driver_labels = pod["metadata"]["labels"]
        executor_labels = {**_executor_template(docs, pod)["metadata"]["labels"]}
        executor_labels["spark-role"] = "executor"  # Spark's own label on its executors
        for labels in (driver_labels, executor_labels):
            assert _matches(spark["podSelector"], labels)
            assert _matches(peers["from"][0]["podSelector"], labels)
            assert _matches(policies["cp-cinepulse-default-deny"]["podSelector"], labels)
        # Prometheus scrapes the driver's /metrics through the PodMonitor
        metrics = [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"]
        [scrape] = [r for r in spark["ingress"] if r is not peers]
        assert [p["port"] for p in scrape["ports"]] == metrics
        assert _matches(monitor, driver_labels)
        # the driver (only) reaches the API server
        outside = policies["cp-cinepulse-egress-outside"]
        assert _matches(outside["podSelector"], driver_labels)
        assert not _matches(outside["podSelector"], executor_labels)
        assert 443 in {p["port"] for p in outside["egress"][0]["ports"]}
        # executors reach Kafka and PostgreSQL as their driver does (the job's component)
        component = executor_labels["app.kubernetes.io/component"]
        assert component == driver_labels["app.kubernetes.io/component"]
        for server in ("kafka", "postgresql"):
            clients = {
                f["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
                for f in policies[f"cp-cinepulse-{server}-ingress"]["ingress"][0]["from"]
            }
            if server == "postgresql" or component == "spark-stream":
                assert component in clients, (server, component)


def test_operator_uses_the_same_fixed_ports(operator_docs: list[dict[str, Any]]) -> None:
    policies = {
        d["metadata"]["name"]: d["spec"] for d in operator_docs if d["kind"] == "NetworkPolicy"
    }
    [peers] = [
        r
        for r in policies["cp-cinepulse-spark-ingress"]["ingress"]
        if "namespaceSelector" not in r["from"][0]
    ]
    ports = {p["port"] for p in peers["ports"]}
    for app in (
        _one(operator_docs, "SparkApplication")["spec"],
        _one(operator_docs, "ScheduledSparkApplication")["spec"]["template"],
    ):
        conf = app["sparkConf"]
        assert {int(conf["spark.driver.port"]), int(conf["spark.blockManager.port"])} == ports


# ------------------------------------------------------------------------------ refused values


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        (["spark.launcher=sparkoperator"], "launcher"),
        (["spark.ports.blockManager=7078"], "must differ from each other"),
        (["spark.ports.driver=9108"], "must differ from each other"),
        (
            ["spark.stream.executor.instances=0"],
            "spark.stream.executor.instances must be at least 1",
        ),
        (
            ["spark.aggregates.driver.memory=256m"],
            "spark.aggregates.driver.memory=256m is below 512m",
        ),
        (["spark.stream.executor.coreRequest=lots"], "coreRequest"),
    ],
)
def test_impossible_spark_values_are_refused(set_values: list[str], message: str) -> None:
    r = chart.render([DEFAULT], [*SUBMIT, *set_values])
    assert r.returncode != 0
    assert message in r.stderr


def test_each_spark_driver_env_satisfies_the_jobs_settings(
    submit_docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings class loads from exactly the env the chart gives each driver: the
    aggregates' pods get no Kafka settings (the real node's demo found them refused:
    ``CINEPULSE_KAFKA: Field required``), the stream's do."""
    from cinepulse_spark_jobs.settings import SparkJobsSettings

    workloads = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d
                 for d in _spark_workloads(submit_docs)}  # fmt: skip
    assert set(workloads) == {"spark-stream", "spark-aggregates"}
    for component, workload in workloads.items():
        for name in [k for k in os.environ if k.startswith("CINEPULSE_")]:
            monkeypatch.delenv(name)
        container = _driver_pod(workload)["spec"]["containers"][0]
        for e in container["env"]:
            if e["name"].startswith("CINEPULSE_"):
                # a Secret's value: any well-formed one
                value = e.get("value", "postgresql://u:p@db:5432/cinepulse")
                monkeypatch.setenv(e["name"], value)
        settings = SparkJobsSettings()
        assert (settings.kafka is not None) == (component == "spark-stream"), component
