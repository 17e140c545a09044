"""The chart's rendered objects wired as documented: credentials only in generated Secrets,
every HTTP service served, probed and scraped, migrations once per install and upgrade,
network policies admitting only the documented flows (managed dependencies included), the
api's read access shared with the recommender, the Spark applications, the helm test
script."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import yaml

from cinepulse_devstack import chart
from tests.unit.chart_support import DEFAULT, job_of, pods_of, require_tools

require_tools("helm")


def test_no_credential_in_values_or_rendered_objects(default_docs: list[dict[str, Any]]) -> None:
    values = yaml.safe_load((chart.chart_dir() / "values.yaml").read_text())

    def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f"{path}.{k}" if path else k)
        else:
            yield path, node

    for path, value in walk(values):
        leaf = path.rsplit(".", 1)[-1].lower()
        if any(w in leaf for w in ("password", "token", "apikey")):
            assert not value, f"{path} has a default credential"
    secrets = {}
    for d in default_docs:
        if d["kind"] == "Secret":  # only the generated database credentials
            secrets[d["metadata"]["name"]] = {
                k: base64.b64decode(v).decode() for k, v in d["data"].items()
            }
            assert d["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # the services' own PostgreSQL logins: tests/unit/test_chart_database_logins.py
    assert set(secrets) == {
        "cp-cinepulse-postgresql",
        "cp-cinepulse-postgresql-logins",
        "cp-cinepulse-mongodb",
    }
    # one password per database, and the connection string built from that same password
    pg, mongo = secrets["cp-cinepulse-postgresql"], secrets["cp-cinepulse-mongodb"]
    assert len(pg["password"]) == 32
    assert pg["dsn"] == (
        f"postgresql://cinepulse:{pg['password']}@cp-cinepulse-postgresql:5432/cinepulse"
    )
    assert mongo["url"].startswith(f"mongodb://cinepulse:{mongo['password']}@")
    for name, spec in pods_of(default_docs):
        for c in spec["containers"]:
            for env in c.get("env", []):
                # connection strings only ever come from a Secret
                text = str(env.get("value", ""))
                assert "postgresql://" not in text and "mongodb://" not in text, (name, env)
    for d in default_docs:
        if d["kind"] == "ConfigMap":
            text = json.dumps(d["data"])
            assert "postgresql://" not in text and "mongodb://" not in text, d["metadata"]


def test_every_http_service_is_served_probed_and_scraped(
    default_docs: list[dict[str, Any]],
) -> None:
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for d in default_docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    monitors = {
        m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        for m in by_kind["ServiceMonitor"].values()
    }
    for name, dep in by_kind["Deployment"].items():
        component = dep["metadata"]["labels"]["app.kubernetes.io/component"]
        assert name in by_kind["Service"], name
        container = dep["spec"]["template"]["spec"]["containers"][0]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] == "http", (name, probe)
        assert "checksum/config" in dep["spec"]["template"]["metadata"]["annotations"]
        assert component in monitors, component  # the explorer too: /metrics on its port
    assert {"gateway", "recommender"} <= {
        h["spec"]["scaleTargetRef"]["name"].rsplit("-", 1)[-1]
        for h in by_kind["HorizontalPodAutoscaler"].values()
    }
    assert "cp-cinepulse-spark" in by_kind["PodMonitor"]


def test_migrations_run_once_per_install_and_upgrade(rendered: dict[str, str]) -> None:
    def hook(manifests: str) -> str | None:
        job = job_of(chart.documents(manifests), "migrations")
        assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["upgrade", "head"]
        return (job["metadata"].get("annotations") or {}).get("helm.sh/hook")

    # an external database is migrated before anything else starts
    assert hook(rendered["external"]) == "pre-install,pre-upgrade"
    # the bundled one exists only after the install: a plain Job of the release then (a
    # post-install hook deadlocked `helm install --wait` on the real node: helm waits for
    # the recommender, which is not ready before its schema exists), a pre-upgrade hook later
    assert hook(rendered["default"]) is None
    upgrade = chart.render([chart.chart_dir() / "ci" / "default-values.yaml"], is_upgrade=True)
    assert upgrade.returncode == 0, upgrade.stderr
    assert hook(upgrade.stdout) == "pre-install,pre-upgrade"


def test_network_policies_admit_only_the_documented_flows(
    default_docs: list[dict[str, Any]],
) -> None:
    policies = {
        d["metadata"]["name"]: d["spec"] for d in default_docs if d["kind"] == "NetworkPolicy"
    }
    deny = policies["cp-cinepulse-default-deny"]
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny

    def clients(server: str) -> set[str]:
        rule = policies[f"cp-cinepulse-{server}-ingress"]["ingress"][0]
        return {
            f["podSelector"]["matchLabels"].get("app.kubernetes.io/component", "jobs")
            for f in rule["from"]
        }

    assert clients("postgresql") == {
        "api",
        "recommender",
        "explorer",
        "spark-stream",
        "spark-aggregates",
        "migrations",
        "jobs",
    }
    assert clients("mongodb") == {"archiver", "jobs"}
    assert "api" not in clients("kafka")
    assert clients("archiver") == {"api"}
    # public servers without ingressFrom admit any client on their port only
    assert "from" not in policies["cp-cinepulse-gateway-ingress"]["ingress"][0]
    # Prometheus' namespace reaches every scraped server's /metrics (the explorer's included)
    for server in ("gateway", "archiver", "api", "recommender", "explorer"):
        scrape = policies[f"cp-cinepulse-{server}-ingress"]["ingress"][-1]
        assert "namespaceSelector" in scrape["from"][0], server
    # every dependency bundled: nothing leaves for a managed one
    assert "cp-cinepulse-egress-external" not in policies


def _access(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    """A Deployment's access wiring: its CINEPULSE_AUTH__* env, the api-keys volume and mount,
    and the explorer's key for the recommender."""
    (dep,) = [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    spec = dep["spec"]["template"]["spec"]
    container = spec["containers"][0]
    return {
        "env": {
            e["name"]: e
            for e in container.get("env", [])
            if e["name"].startswith("CINEPULSE_AUTH__")
            or e["name"] == "CINEPULSE_RECOMMENDER_API_KEY"
        },
        "mounts": [m for m in container.get("volumeMounts", []) if m["name"] == "api-keys"],
        "volumes": [v for v in spec.get("volumes", []) if v["name"] == "api-keys"],
    }


def test_the_recommender_takes_the_apis_keys_roles_and_user_tokens(
    rendered: dict[str, str],
) -> None:
    """Recommendations are per-user data: the recommender reads them under the api's rules
    (its keys Secret, roles, public aggregates, user-token secret), and the explorer sends
    its own key, one entry of that Secret."""
    external = chart.documents(rendered["external"])
    api, recommender = _access(external, "api"), _access(external, "recommender")
    assert recommender == api
    env = recommender["env"]
    assert set(env) == {
        "CINEPULSE_AUTH__KEYS_PATH",
        "CINEPULSE_AUTH__PUBLIC_AGGREGATES",
        "CINEPULSE_AUTH__ROLES",
        "CINEPULSE_AUTH__USER_TOKEN_SECRET",
    }
    assert env["CINEPULSE_AUTH__KEYS_PATH"]["value"] == recommender["mounts"][0]["mountPath"]
    assert recommender["volumes"][0]["secret"]["secretName"] == "cinepulse-api-keys"
    assert json.loads(env["CINEPULSE_AUTH__ROLES"]["value"])["explorer"] == "internal"
    assert env["CINEPULSE_AUTH__USER_TOKEN_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "cinepulse-user-tokens",
        "key": "secret",
    }
    explorer = _access(external, "explorer")
    assert explorer["volumes"] == []  # only its own entry reaches the explorer's pod
    assert explorer["env"] == {
        "CINEPULSE_RECOMMENDER_API_KEY": {
            "name": "CINEPULSE_RECOMMENDER_API_KEY",
            "valueFrom": {
                "secretKeyRef": {"name": "cinepulse-api-keys", "key": "explorer", "optional": True}
            },
        }
    }
    # without a keys Secret: nothing mounted, no key for the explorer (every per-user request
    # is refused, as by the api)
    default = chart.documents(rendered["default"])
    assert _access(default, "recommender") == _access(default, "api")
    assert "CINEPULSE_AUTH__KEYS_PATH" not in _access(default, "recommender")["env"]
    assert _access(default, "explorer")["env"] == {}


def _external_egress(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [spec] = [
        d["spec"]
        for d in docs
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "cp-cinepulse-egress-external"
    ]
    return spec


def test_managed_dependencies_are_reachable_through_the_policies(
    rendered: dict[str, str],
) -> None:
    """With default deny, the release's pods reach a managed Kafka, PostgreSQL and MongoDB
    on their ports (Kafka's from its bootstrap servers), and nothing else outside."""
    spec = _external_egress(chart.documents(rendered["external"]))
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/instance": "cp"}}
    assert spec["policyTypes"] == ["Egress"]
    [rule] = spec["egress"]
    assert rule["ports"] == [
        {"port": 9093, "protocol": "TCP"},
        {"port": 5432, "protocol": "TCP"},
        {"port": 27017, "protocol": "TCP"},
    ]
    assert "to" not in rule  # no destinations given: any address, these ports only


def test_managed_dependency_egress_narrowed_to_given_destinations() -> None:
    r = chart.render(
        [DEFAULT],
        [
            "mongodb.enabled=false",
            "externalMongodb.existingSecret=m",
            "networkPolicies.external.to[0].ipBlock.cidr=10.20.0.0/16",
            "networkPolicies.external.mongodbPorts={27017,27018}",
        ],
    )
    assert r.returncode == 0, r.stderr
    [rule] = _external_egress(chart.documents(r.stdout))["egress"]
    assert rule["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    assert [p["port"] for p in rule["ports"]] == [27017, 27018]  # MongoDB only


def test_spark_applications(default_docs: list[dict[str, Any]]) -> None:
    (stream,) = [d for d in default_docs if d["kind"] == "SparkApplication"]
    assert stream["spec"]["restartPolicy"]["type"] == "Always"
    assert stream["spec"]["arguments"] == ["stream"]
    mounts = {m["mountPath"] for m in stream["spec"]["driver"]["volumeMounts"]}
    assert "/checkpoints" in mounts
    (scheduled,) = [d for d in default_docs if d["kind"] == "ScheduledSparkApplication"]
    assert scheduled["spec"]["concurrencyPolicy"] == "Forbid"
    assert scheduled["spec"]["template"]["arguments"] == ["aggregate"]


def test_helm_test_script_imports_only_what_the_gateways_image_has() -> None:
    """The helm test pod runs the gateway's image: the standard library and the gateway's
    own dependencies (it starts a gateway of its own), no HTTP client package (an import of
    httpx failed there on the real node)."""
    import ast
    import re
    import sys
    from importlib.metadata import requires

    def dependencies(distribution: str) -> set[str]:
        names = set()
        for req in requires(distribution) or []:
            if "extra ==" not in req:
                names.add(re.split(r"[<>=!\[; ]", req, maxsplit=1)[0].replace("-", "_"))
        return names

    image = dependencies("cinepulse-event-gateway") | {"cinepulse_event_gateway"}
    image |= dependencies("cinepulse-common")
    tree = ast.parse((chart.chart_dir() / "files" / "helm-test.py").read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0] for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }  # fmt: skip
    allowed = set(sys.stdlib_module_names) | image
    assert "httpx" not in image
    assert imported and imported <= allowed, imported - allowed


def test_scaling_leaves_the_pods_alone_and_a_config_change_rolls_them() -> None:
    """The pod template's checksum follows the component's configuration, not its scale:
    `helm upgrade --set api.replicas=3` must not restart every api pod (the e2e's upgrade
    found 4 available pods of 3 in the middle of such a needless rollout)."""

    def template_of(*sets: str) -> dict[str, Any]:
        r = chart.render([DEFAULT], sets)
        assert r.returncode == 0, r.stderr
        (dep,) = [
            d
            for d in chart.documents(r.stdout)
            if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-api")
        ]
        return dep["spec"]["template"]  # type: ignore[no-any-return]

    base = template_of()
    assert template_of("api.replicas=3") == base
    assert template_of("api.pdb.enabled=false") == base
    changed = template_of("api.port=8081")["metadata"]["annotations"]["checksum/config"]
    assert changed != base["metadata"]["annotations"]["checksum/config"]
