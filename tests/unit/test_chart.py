"""The Helm chart without a cluster: lint, every scenario rendered and validated (kubeconform
against the Kubernetes and CRD schemas, strict), kube-score with zero critical findings, the
rendered objects' security and wiring asserted, and the alert rules checked and unit-tested
with promtool."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cinepulse_devstack import chart

try:
    chart.tool("helm")
    chart.tool("kubeconform")
    chart.tool("kube-score")
except chart.ChartToolMissing as exc:  # make setup builds them
    pytest.skip(str(exc), allow_module_level=True)

SCENARIOS = {p.name.removesuffix("-values.yaml"): p for p in chart.scenarios()}
DEFAULT = SCENARIOS["default"]
POD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob", "Pod"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    out = {}
    for name, values in SCENARIOS.items():
        r = chart.render([values])
        assert r.returncode == 0, r.stderr
        out[name] = r.stdout
    return out


@pytest.fixture(scope="module")
def default_docs(rendered: dict[str, str]) -> list[dict[str, Any]]:
    return chart.documents(rendered["default"])


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    kind = doc["kind"]
    if kind == "Pod":
        return doc["spec"]  # type: ignore[no-any-return]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return doc["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def _pods(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        if d["kind"] in POD_KINDS:
            yield f"{d['kind']}/{d['metadata']['name']}", _pod_spec(d)


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
    pods = dict(_pods(docs))
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
    assert set(secrets) == {"cp-cinepulse-postgresql", "cp-cinepulse-mongodb"}
    # one password per database, and the connection string built from that same password
    pg, mongo = secrets["cp-cinepulse-postgresql"], secrets["cp-cinepulse-mongodb"]
    assert len(pg["password"]) == 32
    assert pg["dsn"] == (
        f"postgresql://cinepulse:{pg['password']}@cp-cinepulse-postgresql:5432/cinepulse"
    )
    assert mongo["url"].startswith(f"mongodb://cinepulse:{mongo['password']}@")
    for name, spec in _pods(default_docs):
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


def _job(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    (job,) = [
        d
        for d in docs
        if d["kind"] == "Job"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return job


def test_migrations_run_once_per_install_and_upgrade(rendered: dict[str, str]) -> None:
    def hook(manifests: str) -> str | None:
        job = _job(chart.documents(manifests), "migrations")
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


# ------------------------------------------------------------------------------ Metabase


def _objects(docs: list[dict[str, Any]], component: str) -> dict[str, dict[str, Any]]:
    """``Kind`` -> the object of ``component`` (one per kind)."""
    return {
        d["kind"]: d
        for d in docs
        if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == component
    }


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_metabase_is_off_by_default(default_docs: list[dict[str, Any]]) -> None:
    values = yaml.safe_load((chart.chart_dir() / "values.yaml").read_text())
    assert values["metabase"]["enabled"] is False
    assert not _objects(default_docs, "metabase") and not _objects(default_docs, "metabase-setup")


def test_metabase_runs_pinned_probed_and_on_its_own_database(rendered: dict[str, str]) -> None:
    docs = chart.documents(rendered["metabase"])
    mb = _objects(docs, "metabase")
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
    env = _env(c)
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
    assert _env(wait)["CINEPULSE_METABASE__APP_DATABASE__PASSWORD"] == env["MB_DB_PASS"]
    ports = {p["name"]: p["port"] for p in mb["Service"]["spec"]["ports"]}
    assert ports == {"http": 3000, "metrics": 9191}
    (endpoint,) = mb["ServiceMonitor"]["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")


def test_metabase_credentials_are_generated_once_and_kept(rendered: dict[str, str]) -> None:
    docs = chart.documents(rendered["metabase"])
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert set(secrets) == {
        "cp-cinepulse-postgresql",
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
    for name, spec in _pods(docs):
        for c in spec["containers"] + spec.get("initContainers", []):
            for value in _env(c).values():
                assert not any(v in str(value) for v in data.values()), (name, c["name"])


def test_metabase_with_an_existing_secret(rendered: dict[str, str]) -> None:
    """The external scenario: the operator's Secret, Metabase's database theirs too."""
    docs = chart.documents(rendered["external"])
    assert not [d for d in docs if d["kind"] == "Secret"]
    mb = _objects(docs, "metabase")
    assert "ServiceMonitor" not in mb  # metabase.metrics.enabled: false
    pod = mb["Deployment"]["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    env = _env(pod["containers"][0])
    assert env["MB_DB_CONNECTION_URI"] == {
        "secretKeyRef": {"name": "cinepulse-metabase", "key": "database-uri"}
    }
    assert not any(k.startswith("MB_DB_") and k != "MB_DB_CONNECTION_URI" for k in env)
    job = _job(docs, "metabase-setup")
    (prepare,) = job["spec"]["template"]["spec"]["initContainers"]
    assert not any("APP_DATABASE" in k for k in _env(prepare))  # nothing made for Metabase
    assert _env(prepare)["CINEPULSE_POSTGRES__DSN"]["secretKeyRef"]["name"] == "cinepulse-postgres"


def test_metabase_setup_hook_makes_the_role_then_provisions(rendered: dict[str, str]) -> None:
    for scenario in ("metabase", "external"):
        docs = chart.documents(rendered[scenario])
        migrations, setup = _job(docs, "migrations"), _job(docs, "metabase-setup")
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
            "cinepulse_common.metabase",
            "prepare-database",
        ]
        assert provision["command"] == ["python", "-m", "cinepulse_common.metabase", "provision"]
        assert (
            prepare["image"]
            == provision["image"]
            == migrations["spec"]["template"]["spec"]["containers"][0]["image"]
        )
        first, then = _env(prepare), _env(provision)
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
                "from": [{"namespaceSelector": {}}],
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


# ------------------------------------------------------------------------------ alerts


def _promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.skip("promtool is not installed (make setup installs Debian's prometheus)")
    return found


def _rules_file(tmp_path: Path, docs: list[dict[str, Any]]) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": chart.prometheus_rule_groups(docs)}))
    return path


def test_alert_rules_pass_promtool(tmp_path: Path, default_docs: list[dict[str, Any]]) -> None:
    rules = _rules_file(tmp_path, default_docs)
    r = subprocess.run([_promtool(), "check", "rules", str(rules)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    names = {
        rule["alert"] for g in chart.prometheus_rule_groups(default_docs) for rule in g["rules"]
    }
    assert {
        "CinepulseGatewayErrorRatioHigh",
        "CinepulseGatewayProduceErrors",
        "CinepulseArchiverLagGrowing",
        "CinepulseStreamingStalled",
        "CinepulseFallbackActive",
        "CinepulseRecommenderModelTooOld",
        "CinepulseDataDrift",
    } <= names


def test_dashboard_queries_parse(tmp_path: Path, default_docs: list[dict[str, Any]]) -> None:
    queries = list(chart.dashboard_queries(default_docs))
    assert len(queries) >= 14
    # promtool parses PromQL offline when the queries are recording rules
    rules = [
        {"record": f"cinepulse:dashboard_query_{i}", "expr": expr}
        for i, (_title, expr) in enumerate(queries)
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    r = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_alerts_fire_on_synthetic_series(
    tmp_path: Path, default_docs: list[dict[str, Any]]
) -> None:
    rules = _rules_file(tmp_path, default_docs)
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # 10 requests/min, one of them a 503: a 10% error ratio
                    {
                        "series": 'cinepulse_gateway_http_requests_total{route="/api/events",method="POST",status="202"}',
                        "values": "0+9x20",
                    },
                    {
                        "series": 'cinepulse_gateway_http_requests_total{route="/api/events",method="POST",status="503"}',
                        "values": "0+1x20",
                    },
                    # the streaming job's last progress stays at t=0
                    {
                        "series": 'cinepulse_spark_last_progress_timestamp_seconds{query="events"}',
                        "values": "0x20",
                    },
                    {"series": "cinepulse_quality_drift", "values": "0 0 1x18"},
                    {"series": "cinepulse_recommender_model_age_seconds", "values": "200000x20"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "12m",
                        "alertname": "CinepulseGatewayErrorRatioHigh",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical"},
                                "exp_annotations": {
                                    "summary": "More than 5% of the event gateway's answers are 5xx",
                                    "description": "10% of event requests failed over 5 minutes; frontends retry with their event ids, but Kafka may be unreachable (see CinepulseGatewayProduceErrors).",
                                },
                            }
                        ],
                    },
                    {"eval_time": "3m", "alertname": "CinepulseStreamingStalled", "exp_alerts": []},
                    {
                        "eval_time": "10m",
                        "alertname": "CinepulseStreamingStalled",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical"},
                                "exp_annotations": {
                                    "summary": "The Spark streaming job made no progress",
                                    "description": "The events query's last progress was 10m 0s ago; the streaming_guard DAG runs the pandas fallback for the uncovered window.",
                                },
                            }
                        ],
                    },
                    {"eval_time": "1m", "alertname": "CinepulseDataDrift", "exp_alerts": []},
                    {
                        "eval_time": "5m",
                        "alertname": "CinepulseDataDrift",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical"},
                                "exp_annotations": {
                                    "summary": "The reconciliation found records not accounted for",
                                    "description": "See cinepulse_quality_differences by kind and the data_quality DAG's log for the positions.",
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "5m",
                        "alertname": "CinepulseRecommenderModelTooOld",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning"},
                                "exp_annotations": {
                                    "summary": "The served recommendation model is old",
                                    "description": "The newest published model is 2d 7h 33m 20s old: the recommender_train DAG fails or never beats the current model.",
                                },
                            }
                        ],
                    },
                    # no Kafka errors were recorded: this alert stays silent
                    {
                        "eval_time": "15m",
                        "alertname": "CinepulseGatewayProduceErrors",
                        "exp_alerts": [],
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "alerts-test.yaml"
    test_file.write_text(yaml.safe_dump(tests, width=1000))
    r = subprocess.run(
        [_promtool(), "test", "rules", str(test_file)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboards_are_grafana_json() -> None:
    for f in (chart.chart_dir() / "dashboards").glob("*.json"):
        dash = json.loads(f.read_text())
        assert dash["uid"] and dash["title"]
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f.name
        for p in dash["panels"]:
            assert p["targets"], (f.name, p["title"])
            assert p["datasource"]["uid"] == "${datasource}"


def test_dashboard_variables_are_expanded_as_grafana_would() -> None:
    dashboard = {
        "templating": {"list": [{"name": "route", "current": {"value": ["/a", "/b"]}}]},
        "panels": [
            {
                "title": "row",
                "panels": [
                    {
                        "title": "p",
                        "targets": [
                            {"expr": 'sum(rate(x{namespace="$namespace"}[$__rate_interval]))'},
                            {
                                "expr": 'rate(y{route=~"${route:regex}"}[$__interval]) * [[__range_s]]'
                            },
                        ],
                    }
                ],
            }
        ],
    }
    doc = {
        "kind": "ConfigMap",
        "metadata": {"labels": {"grafana_dashboard": "1"}},
        "data": {"d.json": json.dumps(dashboard)},
    }
    assert list(chart.dashboard_queries([doc])) == [
        ("p", 'sum(rate(x{namespace="cinepulse"}[2m]))'),
        ("p", 'rate(y{route=~"/a|/b"}[1m]) * 21600'),
    ]
    # the local stack scrapes every 5 s: max(1m + 5s, 4 x 5s)
    assert chart.grafana_variables(5)["__rate_interval"] == "65s"
    with pytest.raises(KeyError, match=r"\$cluster"):
        chart.expand_grafana("up{cluster='$cluster'}", {})


def test_local_scrape_labels_mirror_the_monitors(
    tmp_path: Path, default_docs: list[dict[str, Any]]
) -> None:
    """Each service the local stack registers with Prometheus carries the labels the chart's
    ServiceMonitor (Spark's driver: PodMonitor) gives it in the cluster, so the alert rules and
    dashboards run locally unchanged (tests/integration/test_monitoring_live.py runs them)."""
    from cinepulse_devstack import Stack, StackSettings
    from cinepulse_devstack.services import PythonService

    monitors = chart.monitor_labels(default_docs)
    deployments = {d["metadata"]["name"]: d for d in default_docs if d["kind"] == "Deployment"}
    stack = Stack(StackSettings(root=tmp_path))
    # the Pushgateway's counterpart is the local Prometheus' static job, scraped with
    # honor_labels as the chart's ServiceMonitor does (honorLabels): the pushed series keep
    # the job/instance the batch jobs gave them in both
    gateway = monitors.pop(f"ServiceMonitor/{chart.RELEASE}-cinepulse-pushgateway")
    assert gateway["endpoint"] == "http"
    (local,) = [
        j for j in stack.prometheus.config()["scrape_configs"] if j["job_name"] == "pushgateway"
    ]
    assert local["honor_labels"] is True
    # its `up` carries the labels the ServiceMonitor gives the target in the cluster
    (target,) = local["static_configs"]
    assert gateway.items() <= target["labels"].items(), (gateway, target["labels"])
    matched: set[str] = set()
    for svc in stack.services:
        assert isinstance(svc, PythonService)
        if not svc.scraped:
            continue
        labels = svc.scrape_labels()
        mine = [m for m, want in monitors.items() if want.items() <= labels.items()]
        assert len(mine) == 1, (svc.name, labels, monitors)
        matched.update(mine)
        if "service" in labels:  # a Deployment behind the Service, its container so named
            pod = _pod_spec(deployments[labels["service"]])
            assert labels["container"] in {c["name"] for c in pod["containers"]}
    assert matched == set(monitors), "a monitor of the chart has no local counterpart"


def test_helm_test_script_needs_only_the_standard_library() -> None:
    """The helm test pod runs the gateway's image, which has no HTTP client package: an
    import of httpx failed there on the real node."""
    import ast
    import sys

    tree = ast.parse((chart.chart_dir() / "files" / "helm-test.py").read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0] for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }  # fmt: skip
    assert imported and imported <= set(sys.stdlib_module_names), imported - set(
        sys.stdlib_module_names
    )
