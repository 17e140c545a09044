"""Metabase in the chart (metabase.enabled, off by default): pinned, probed and on its own
application database, credentials generated once and kept (or the operator's Secret), the
setup hook making the reader role then provisioning, and its network flows."""

from __future__ import annotations

import base64
import json
from typing import Any

import yaml

from cinepulse_devstack import chart
from tests.unit.chart_support import (
    SCENARIOS,
    env_of,
    job_of,
    objects_of,
    pods_of,
    require_tools,
)

require_tools("helm")


def test_metabase_is_off_by_default(default_docs: list[dict[str, Any]]) -> None:
    values = yaml.safe_load((chart.chart_dir() / "values.yaml").read_text())
    assert values["metabase"]["enabled"] is False
    assert not objects_of(default_docs, "metabase") and not objects_of(
        default_docs, "metabase-setup"
    )


def test_metabase_runs_pinned_probed_and_on_its_own_database(rendered: dict[str, str]) -> None:
    docs = chart.documents(rendered["metabase"])
    mb = objects_of(docs, "metabase")
    assert {"Deployment", "Service", "ServiceAccount", "Secret", "ServiceMonitor"} <= set(mb)
    dep = mb["Deployment"]
    assert dep["spec"]["strategy"] == {"type": "Recreate"}  # one version on its database
    pod = dep["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    repo, tag = c["image"].rsplit(":", 1)
    assert repo == "docker.io/metabase/metabase" and tag.startswith("v0.")  # OSS, pinned
    assert c["startupProbe"]["httpGet"] == {"path": "/api/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/api/health", "port": "http"}
    assert c["livenessProbe"]["tcpSocket"] == {"port": "http"}
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp", "/plugins"}  # noqa: S108
    env = env_of(c)
    secret = "cp-cinepulse-metabase"
    # Metabase's own data in PostgreSQL (database metabase of the bundled server), never H2
    assert env["MB_DB_TYPE"] == "postgres" and env["MB_DB_HOST"] == "cp-cinepulse-postgresql"
    assert env["MB_DB_DBNAME"] == "metabase" and env["MB_DB_USER"] == "metabase"
    assert env["MB_DB_PASS"] == {"secretKeyRef": {"name": secret, "key": "database-password"}}
    assert env["MB_ENCRYPTION_SECRET_KEY"]["secretKeyRef"]["key"] == "encryption-key"
    assert env["MB_PLUGINS_DIR"] == "/plugins" and env["MB_PROMETHEUS_SERVER_PORT"] == "9191"
    # its database is made by the hook after install: the pod waits for it first
    (wait,) = pod["initContainers"]
    assert wait["command"][-1] == "wait-database" and wait["image"] == "cinepulse/migrations:0.1.0"
    assert env_of(wait)["CINEPULSE_METABASE__APP_DATABASE__PASSWORD"] == env["MB_DB_PASS"]
    ports = {p["name"]: p["port"] for p in mb["Service"]["spec"]["ports"]}
    assert ports == {"http": 3000, "metrics": 9191}
    (endpoint,) = mb["ServiceMonitor"]["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")


def test_metabase_credentials_are_generated_once_and_kept(rendered: dict[str, str]) -> None:
    docs = chart.documents(rendered["metabase"])
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert set(secrets) == {
        "cp-cinepulse-postgresql",
        "cp-cinepulse-postgresql-logins",
        "cp-cinepulse-mongodb",
        "cp-cinepulse-metabase",
    }
    mb = secrets["cp-cinepulse-metabase"]
    assert mb["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    data = {k: base64.b64decode(v).decode() for k, v in mb["data"].items()}
    assert set(data) == {"admin-password", "reader-password", "database-password", "encryption-key"}
    for key, value in data.items():
        # 32 characters with a digit (Metabase's default password rules want one)
        assert len(value) == 32 and value.isalnum() and value[-4:].isdigit(), key
    assert len(set(data.values())) == 4
    for name, spec in pods_of(docs):
        for c in spec["containers"] + spec.get("initContainers", []):
            for value in env_of(c).values():
                assert not any(v in str(value) for v in data.values()), (name, c["name"])


def test_metabase_with_an_existing_secret(rendered: dict[str, str]) -> None:
    """The external scenario: the operator's Secret, Metabase's database theirs too."""
    docs = chart.documents(rendered["external"])
    assert not [d for d in docs if d["kind"] == "Secret"]
    mb = objects_of(docs, "metabase")
    assert "ServiceMonitor" not in mb  # metabase.metrics.enabled: false
    pod = mb["Deployment"]["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    env = env_of(pod["containers"][0])
    assert env["MB_DB_CONNECTION_URI"] == {
        "secretKeyRef": {"name": "cinepulse-metabase", "key": "database-uri"}
    }
    assert not any(k.startswith("MB_DB_") and k != "MB_DB_CONNECTION_URI" for k in env)
    job = job_of(docs, "metabase-setup")
    (prepare,) = job["spec"]["template"]["spec"]["initContainers"]
    assert not any("APP_DATABASE" in k for k in env_of(prepare))  # nothing made for Metabase
    assert (
        env_of(prepare)["CINEPULSE_POSTGRES__DSN"]["secretKeyRef"]["name"] == "cinepulse-postgres"
    )


def test_metabase_setup_hook_makes_the_role_then_provisions(rendered: dict[str, str]) -> None:
    for scenario in ("metabase", "external"):
        docs = chart.documents(rendered[scenario])
        migrations, setup = job_of(docs, "migrations"), job_of(docs, "metabase-setup")
        hooks = setup["metadata"]["annotations"]
        # after every install and upgrade, once Metabase's objects exist; after the
        # migrations (they make cinepulse_readonly) when both are post-install hooks
        assert hooks["helm.sh/hook"] == "post-install,post-upgrade"
        # pre-install/pre-upgrade migrations run before it anyway; install-time plain ones
        # are waited for by --wait-for-jobs
        migration_hook = migrations["metadata"].get("annotations") or {}
        assert migration_hook.get("helm.sh/hook", "pre-install,pre-upgrade").startswith("pre-")
        pod = setup["spec"]["template"]["spec"]
        # the role (an init container) strictly before the provisioning
        ((prepare,), (provision,)) = pod["initContainers"], pod["containers"]
        assert prepare["command"] == [
            "python",
            "-m",
            "cinepulse_metabase",
            "prepare-database",
        ]
        assert provision["command"] == ["python", "-m", "cinepulse_metabase", "provision"]
        assert (
            prepare["image"]
            == provision["image"]
            == migrations["spec"]["template"]["spec"]["containers"][0]["image"]
        )
        first, then = env_of(prepare), env_of(provision)
        assert first["CINEPULSE_METABASE__READER_ROLE"] == "cinepulse_metabase"
        assert (
            first["CINEPULSE_METABASE__READER_PASSWORD"]["secretKeyRef"]["key"] == "reader-password"
        )
        assert (
            then["CINEPULSE_METABASE__READER_PASSWORD"]
            == first["CINEPULSE_METABASE__READER_PASSWORD"]
        )
        assert then["CINEPULSE_METABASE__URL"] == "http://cp-cinepulse-metabase:3000"
        # the admin's password only where it is used
        assert then["CINEPULSE_METABASE__ADMIN_PASSWORD"]["secretKeyRef"]["key"] == "admin-password"
        assert "CINEPULSE_METABASE__ADMIN_PASSWORD" not in first
        assert not any("APP_DATABASE" in k for k in then)


def test_metabase_network_flows(rendered: dict[str, str]) -> None:
    for scenario in ("metabase", "external"):
        docs = chart.documents(rendered[scenario])
        policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
        pg = policies.get("cp-cinepulse-postgresql-ingress")
        if pg:  # bundled PostgreSQL: Metabase and its hook among its clients
            clients = {
                f["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
                for f in pg["ingress"][0]["from"]
            }
            assert {"metabase", "metabase-setup"} <= clients
        ingress = policies["cp-cinepulse-metabase-ingress"]["ingress"]
        assert ingress[0]["ports"] == [{"port": 3000, "protocol": "TCP"}]
        if scenario == "metabase":  # public, no ingressFrom: any client; Prometheus on 9191
            assert "from" not in ingress[0]
            assert ingress[1] == {
                "ports": [{"port": 9191, "protocol": "TCP"}],
                # Prometheus' namespace and pods (networkPolicies.prometheus), not every
                # namespace
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                        },
                        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
                    }
                ],
            }
        else:  # its hook, the release's jobs and the ingress controller only; no exporter
            sources = ingress[0]["from"]
            assert {
                "podSelector": {
                    "matchLabels": {
                        "app.kubernetes.io/instance": "cp",
                        "app.kubernetes.io/component": "metabase-setup",
                    }
                }
            } in sources
            assert {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                }
            } in sources
            assert len(ingress) == 1


def test_metabase_on_an_external_database_needs_its_secret() -> None:
    r = chart.render([SCENARIOS["external"]], ["metabase.existingSecret="])
    assert r.returncode != 0
    assert "metabase.existingSecret is required with an external PostgreSQL" in r.stderr


def test_metabase_content_is_mounted_into_the_provision_step(rendered: dict[str, str]) -> None:
    """files/metabase/content.json, verbatim in a ConfigMap (a plain object: it exists before
    the post-install/post-upgrade hook), read by provision at CINEPULSE_METABASE__CONTENT_PATH."""
    source = (chart.chart_dir() / "files" / "metabase" / "content.json").read_text()
    for scenario in ("metabase", "external"):
        docs = chart.documents(rendered[scenario])
        (cm,) = [
            d
            for d in docs
            if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "cp-cinepulse-metabase-content"
        ]
        assert "helm.sh/hook" not in (cm["metadata"].get("annotations") or {})
        assert cm["data"]["content.json"] == source.rstrip("\n")
        assert json.loads(cm["data"]["content.json"])["version"] >= 1
        pod = job_of(docs, "metabase-setup")["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["content"]["configMap"] == {"name": "cp-cinepulse-metabase-content"}
        ((prepare,), (provision,)) = pod["initContainers"], pod["containers"]
        mounts = {m["name"]: m for m in provision["volumeMounts"]}
        assert mounts["content"] == {
            "name": "content",
            "mountPath": "/etc/cinepulse/metabase",
            "readOnly": True,
        }
        path = env_of(provision)["CINEPULSE_METABASE__CONTENT_PATH"]
        assert path == "/etc/cinepulse/metabase/content.json"
        assert "CINEPULSE_METABASE__CONTENT_PATH" not in env_of(prepare)
        assert "content" not in {m["name"] for m in prepare["volumeMounts"]}
    default = chart.documents(rendered["default"])
    assert not [d for d in default if d["metadata"]["name"] == "cp-cinepulse-metabase-content"]
