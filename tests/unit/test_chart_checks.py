"""The Helm chart without a cluster: lint, every scenario (ci/*-values.yaml) rendered and
validated (kubeconform against the Kubernetes and CRD schemas, strict), kube-score with zero
critical findings, the values schema and the cross-field checks refusing what would not
work, and Pod Security "restricted" in every pod. The rendered objects' wiring:
test_chart_wiring.py; Metabase: test_chart_metabase.py; alerts and dashboards:
test_chart_monitoring.py."""

from __future__ import annotations

import pytest
import yaml

from cinepulse_devstack import chart
from tests.unit.chart_support import DEFAULT, SCENARIOS, pods_of, require_tools

require_tools("helm", "kubeconform", "kube-score")


def test_there_are_scenarios() -> None:
    assert {"default", "dev", "external", "metabase"} <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_lint_strict(scenario: str) -> None:
    r = chart.lint(SCENARIOS[scenario])
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_object_is_valid_against_its_schema(scenario: str, rendered: dict[str, str]) -> None:
    r = chart.kubeconform(rendered[scenario])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in r.stdout


def test_kubeconform_is_strict(rendered: dict[str, str]) -> None:
    docs = chart.documents(rendered["default"])
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    spark = next(d for d in docs if d["kind"] == "SparkApplication")
    spark["spec"]["driver"]["coress"] = 1
    for broken in (deployment, spark):
        r = chart.kubeconform(yaml.safe_dump(broken))
        assert r.returncode != 0, f"{broken['kind']} with an unknown field passed"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_kube_score_has_no_critical_finding(scenario: str, rendered: dict[str, str]) -> None:
    # the dev scenario turns network policies off on purpose
    ignores = ["pod-networkpolicy"] if scenario == "dev" else []
    critical = [
        f.text for f in chart.kube_score(rendered[scenario], ignores) if f.level == "CRITICAL"
    ]
    assert critical == []


def test_values_schema_refuses_unknown_keys() -> None:
    r = chart.render([DEFAULT], ["gateway.replicsa=3"])
    assert r.returncode != 0
    assert "replicsa" in r.stderr


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        ([], "gateway.writeKeysSecret is required"),
        (["gateway.auth.enabled=false"], "refused with environment=production"),
        (["postgresql.enabled=false"], "externalPostgresql.existingSecret is required"),
        (["kafka.enabled=false"], "externalKafka.bootstrapServers is required"),
        (["externalMongodb.usersSecret=mine"], "externalMongodb.usersSecret is for an external"),
    ],
)
def test_cross_field_checks_name_the_fix(set_values: list[str], message: str) -> None:
    values = [] if not set_values else [DEFAULT]
    r = chart.render(values, set_values)
    assert r.returncode != 0
    assert message in r.stderr


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_pod_security_restricted_everywhere(scenario: str, rendered: dict[str, str]) -> None:
    docs = chart.documents(rendered[scenario])
    pods = dict(pods_of(docs))
    assert len(pods) >= 9
    spark = [d for d in docs if d["kind"] in ("SparkApplication",)]
    spark += [
        {"spec": d["spec"]["template"]} for d in docs if d["kind"] == "ScheduledSparkApplication"
    ]
    for d in spark:
        for role in ("driver", "executor"):
            r = d["spec"][role]
            pods[f"spark {role}"] = {
                "securityContext": r["podSecurityContext"],
                "containers": [{"name": role, "securityContext": r["securityContext"]}],
            }
    for name, spec in pods.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            # the one exception, documented in the chart: Kafka's launcher writes its config
            expected = not name.endswith("-kafka")
            assert sc["readOnlyRootFilesystem"] is expected, (name, c["name"])
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if expected and "name" in c and c["name"] not in ("driver", "executor"):
                assert "/tmp" in mounts, (name, c["name"])  # noqa: S108 - a mount path
