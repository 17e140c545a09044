"""The demo on a cluster without a cluster: the Jobs it makes from the chart's CronJobs, how
it reads a command's result from a pod's log, the suspended CronJobs of the cluster values,
the node providers, and how ``make demo`` dispatches. The demo's steps themselves run on
the real node in the real-node e2e (tests/e2e/test_cluster_e2e.py)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
import yaml

from cinepulse_common.paths import repo_root
from cinepulse_devstack import chart, cluster
from cinepulse_devstack.cluster import demo, release
from cinepulse_devstack.cluster.kind import Kind
from cinepulse_devstack.cluster.node import Node


def _rendered(*set_values: str, values: bool = True) -> list[dict[str, Any]]:
    files = (
        [release.values_file()] if values else [chart.chart_dir() / "ci" / "default-values.yaml"]
    )
    r = chart.render(files, set_values, release="cp")
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


@pytest.fixture(scope="module")
def cronjobs() -> dict[str, dict[str, Any]]:
    docs = _rendered()
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "CronJob"}


def test_the_cluster_values_install_every_batch_cronjob_suspended(
    cronjobs: dict[str, dict[str, Any]],
) -> None:
    names = {n.removeprefix("cp-cinepulse-") for n in cronjobs}
    assert {
        "tmdb-incremental",
        "recommender-train",
        "quality-reconcile",
        "spark-aggregates",
    } <= names
    assert all(cj["spec"]["suspend"] is True for cj in cronjobs.values())


def test_by_default_cronjobs_run_on_their_schedule() -> None:
    docs = _rendered("jobs.cronJobs.enabled=true", "jobs.tmdbTokenSecret=t",
                     "spark.launcher=submit", values=False)  # fmt: skip
    cjs = [d for d in docs if d["kind"] == "CronJob"]
    assert len(cjs) == 4
    assert all(cj["spec"]["suspend"] is False for cj in cjs)
    docs = _rendered("spark.aggregates.suspend=true", values=False)
    scheduled = [d for d in docs if d["kind"] == "ScheduledSparkApplication"]
    assert scheduled and scheduled[0]["spec"]["suspend"] is True


def test_a_job_from_a_cronjob_overrides_args_and_env_and_never_retries(
    cronjobs: dict[str, dict[str, Any]],
) -> None:
    cj = cronjobs["cp-cinepulse-tmdb-incremental"]
    cj["metadata"]["uid"] = "0d9a3c1e-uid"  # the API server's; a rendering has none
    before = json.dumps(cj, sort_keys=True)
    job = demo.job_from_cronjob(cj, args=["full"], env={"CINEPULSE_TMDB__BASE_URL": "http://h:1"})
    assert json.dumps(cj, sort_keys=True) == before, "the CronJob must not change"
    assert job["kind"] == "Job" and job["spec"]["backoffLimit"] == 0
    assert job["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    # owned by the CronJob, so an uninstall removes it (and its pod) with the release
    (owner,) = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "CronJob",
        cj["metadata"]["name"],
        "0d9a3c1e-uid",
    )
    assert job["metadata"]["name"].startswith(cj["metadata"]["name"])
    assert len(job["metadata"]["name"]) <= 63
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["full"]
    urls = [e for e in container["env"] if e["name"] == "CINEPULSE_TMDB__BASE_URL"]
    assert urls == [{"name": "CINEPULSE_TMDB__BASE_URL", "value": "http://h:1"}]
    # the rest of the pod is the CronJob's: the token file, the restricted security context
    original = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job["spec"]["template"]["spec"]["volumes"] == original["volumes"]
    assert container["securityContext"] == original["containers"][0]["securityContext"]
    train = {**cronjobs["cp-cinepulse-recommender-train"]}
    train["metadata"] = {**train["metadata"], "uid": "u"}
    job = demo.job_from_cronjob(train)
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["train"]


def test_the_result_is_the_last_json_line_with_its_key() -> None:
    log = "\n".join([
        '{"event": "starting", "level": "info"}',
        "progress 10%",
        '{"counts": {"facts": 1}, "differences": {}}',
        '{"counts": {"facts": 7}, "differences": {}}',
        '{"event": "done", "level": "info"}',
        "not json {",
    ])  # fmt: skip
    assert demo.last_json(log, "counts")["counts"] == {"facts": 7}
    assert demo.last_json(log, "status") == {}


def test_node_providers() -> None:
    assert isinstance(cluster.client("local"), Node)
    kind = cluster.client("kind")
    assert isinstance(kind, Kind) and kind.kubeconfig().name == "cinepulse.kubeconfig"
    with pytest.raises(ValueError, match="unknown node provider"):
        cluster.client("minikube")


@pytest.mark.parametrize(
    ("cluster_var", "runs"),
    [
        ("", "cinepulse-stack demo"),
        ("1", "python -m cinepulse_devstack.cluster.demo --users 5"),
        ("kind", "bash scripts/kind.sh demo"),
    ],
)
def test_make_demo_dispatches_on_cluster(cluster_var: str, runs: str) -> None:
    # Under `make test` the parent make's MAKEFLAGS/MAKELEVEL would make this one print
    # "Entering/Leaving directory" lines; the test runs make as a user would, from a shell.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    r = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo", f"CLUSTER={cluster_var}", "DEMO_ARGS=--users 5"],
        cwd=repo_root(), capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    assert runs in r.stdout.splitlines()[-1]
