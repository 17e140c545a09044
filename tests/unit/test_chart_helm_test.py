"""Issue 20, "helm test posts a real event into production topics": the chart's test pod
(templates/tests) runs files/helm-test.py, which writes only to topics of a test-only prefix
through a gateway of its own and deletes them. Here: what the pod needs for that is
rendered (the release's Kafka settings, as the gateway's; Kafka's policy admits it), both
hooks are deleted after success, and the prefix cannot name a production topic. The script
itself against a real Kafka, gateway and api: tests/integration/test_helm_test_script.py."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from cinepulse_common import topics
from cinepulse_devstack import chart
from tests.unit.chart_support import SCENARIOS, pod_spec, require_tools

require_tools("helm")

NAME = f"{chart.RELEASE}-cinepulse-helm-test"


def _docs(scenario: str) -> list[dict[str, Any]]:
    r = chart.render([SCENARIOS[scenario]])
    assert r.returncode == 0, r.stderr
    return chart.documents(r.stdout)


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _script_constant(name: str) -> Any:
    tree = ast.parse((chart.chart_dir() / "files" / "helm-test.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not in helm-test.py")


@pytest.mark.parametrize("scenario", ["default", "external"])
def test_the_test_pod_reaches_kafka_as_the_gateway_does(scenario: str) -> None:
    docs = _docs(scenario)
    pod = _one(docs, "Pod", NAME)
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    gateway = pod_spec(_one(docs, "Deployment", f"{chart.RELEASE}-cinepulse-gateway"))
    kafka = {e["name"]: e for e in gateway["containers"][0]["env"]}
    wanted = {k: v for k, v in kafka.items() if k.startswith("CINEPULSE_KAFKA__")}
    assert wanted and {k: env[k] for k in wanted} == wanted
    # its prefix is the script's own, never the release's topics
    assert "CINEPULSE_KAFKA__TOPIC_PREFIX" not in env
    assert container["image"] == gateway["containers"][0]["image"]
    # a gateway runs in it: more than the old 128Mi
    assert container["resources"]["limits"]["memory"] == "384Mi"


def test_kafkas_policy_admits_the_test_pod() -> None:
    from cinepulse_devstack.cluster.netpol import Peer, admits

    docs = _docs("default")
    pod = _one(docs, "Pod", NAME)
    kafka = _one(docs, "StatefulSet", f"{chart.RELEASE}-cinepulse-kafka")["spec"]["template"]
    broker = {"metadata": {**kafka["metadata"], "namespace": "cinepulse"}, "spec": kafka["spec"]}
    ns = {"kubernetes.io/metadata.name": "cinepulse"}
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert admits(policies, broker, 9092, Peer("cinepulse", ns, pod["metadata"]["labels"], "::1"))
    stranger = {"app.kubernetes.io/instance": chart.RELEASE}
    assert not admits(policies, broker, 9092, Peer("cinepulse", ns, stranger, "::1"))


def test_both_hooks_are_deleted_once_they_succeed() -> None:
    docs = _docs("default")
    for kind in ("Pod", "ConfigMap"):
        annotations = _one(docs, kind, NAME)["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "test"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    script = _one(docs, "ConfigMap", NAME)["data"]["helm-test.py"]
    assert script.strip() == (chart.chart_dir() / "files" / "helm-test.py").read_text().strip()


def test_the_test_prefix_names_no_production_topic() -> None:
    """A run deletes its own topics and earlier runs' once stale (``helm-test-<start>-``):
    no topic of the platform may start with the prefix, the archiver's tables included."""
    root = _script_constant("PREFIX_ROOT")
    assert root == "helm-test-"
    assert not [t for t in topics.ALL_TOPICS if t.startswith(root)]
    from cinepulse_archiver.settings import ArchiverSettings

    app_id = ArchiverSettings.model_fields["app_id"].default
    assert not app_id.startswith(root)
    script = (chart.chart_dir() / "files" / "helm-test.py").read_text()
    assert '"CINEPULSE_KAFKA__TOPIC_PREFIX": prefix' in script
