"""The Cinepulse release on a cluster, the same steps for every node provider and for both
the e2e (:mod:`.e2e`) and the demo on the cluster (:mod:`.demo`): the chart's images on
the node, the operators' CRDs, the Prometheus operator, the namespace (Pod Security
"restricted" enforced) with the gateway's, the api's and the fetcher's Secrets, storage for
the claims, then ``helm upgrade --install --wait`` with ``ci/cluster-values.yaml``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from cinepulse_devstack import chart, kube
from cinepulse_devstack.cluster import access, images, monitoring
from cinepulse_devstack.cluster.client import KubeClient, Say
from cinepulse_devstack.kube import NAMESPACE, RELEASE, StepFailed
from cinepulse_devstack.procs import StackError

WRITE_KEYS, API_KEYS, TMDB_SECRET = "cinepulse-write-keys", "cinepulse-api-keys", "cinepulse-tmdb"
#: the key id of this machine's clients (the e2e and the demo); ``helm-test`` is helm
#: test's; both have the api's internal role (ci/cluster-values.yaml: api.auth.roles) and
#: are the gateway's server keys (any user's events: gateway.auth.roles), and the gateway
#: never throttles ``demo``'s replays (there: gateway.rateLimits)
CLIENT_KEY = "demo"
HELM_TEST_KEY = "helm-test"
INSTALL_TIMEOUT = "15m"


def values_file() -> Path:
    return chart.chart_dir() / "ci" / "cluster-values.yaml"


def fullname(component: str) -> str:
    return f"{RELEASE}-cinepulse-{component}"


def render(values: Path | None = None) -> str:
    values = values or values_file()
    r = chart.render([values], release=RELEASE)
    if r.returncode:
        raise StepFailed(f"helm template with {values.name}: {r.stderr.strip()[-2000:]}")
    return r.stdout


@dataclass(frozen=True)
class Keys:
    write: str
    api: str
    #: the TMDB token the fetcher's Job sends (the offline TMDB server's, in the demo)
    tmdb: str
    #: the explorer's key for the recommender (its own client, internal)
    explorer: str
    #: helm test's own write and api keys: a key names one client, and with demo's value
    #: the gateway took demo's replays for helm-test's (throttled: rateLimits names demo)
    helm_test_write: str
    helm_test_api: str


def _kept(client: KubeClient, name: str, key: str) -> str | None:
    """A key of a Secret already there (a second demo run keeps the clients' keys)."""
    try:
        return access.secret_value(client, NAMESPACE, name, key)
    except (StackError, StepFailed):
        return None


def keys(client: KubeClient, tmdb_token: str) -> Keys:
    return Keys(
        write=_kept(client, WRITE_KEYS, CLIENT_KEY) or secrets.token_hex(24),
        api=_kept(client, API_KEYS, CLIENT_KEY) or secrets.token_hex(24),
        tmdb=tmdb_token,
        explorer=_kept(client, API_KEYS, "explorer") or secrets.token_hex(24),
        helm_test_write=_kept(client, WRITE_KEYS, HELM_TEST_KEY) or secrets.token_hex(24),
        helm_test_api=_kept(client, API_KEYS, HELM_TEST_KEY) or secrets.token_hex(24),
    )


def namespace_manifest(k: Keys) -> str:
    """The namespace (Pod Security "restricted" enforced), the gateway's write keys, the
    api's keys and the fetcher's TMDB token."""

    def secret(name: str, data: dict[str, str]) -> dict[str, object]:
        meta = {"name": name, "namespace": NAMESPACE}
        return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": data}

    return yaml.safe_dump_all(
        [
            kube.restricted_namespace(),
            secret(WRITE_KEYS, {CLIENT_KEY: k.write, HELM_TEST_KEY: k.helm_test_write}),
            secret(
                API_KEYS,
                {CLIENT_KEY: k.api, HELM_TEST_KEY: k.helm_test_api, "explorer": k.explorer},
            ),
            secret(TMDB_SECRET, {"token": k.tmdb}),
        ]
    )


# -- the steps, in order ----------------------------------------------------------------


#: images only Airflow's pods use (no chart workload does): the pandas fallback's, whose
#: run and promotion are Airflow tasks (airflow/dags/cinepulse_airflow/config.py)
AIRFLOW_ONLY_IMAGES = ("pandas-fallback",)


def node_images() -> list[str]:
    """The chart's images, and those Airflow's pod tasks add, as the node has them (the
    tag of the chart's own images)."""
    refs = images.images_in(render())
    own = [r for r in refs if r.startswith("localhost/cinepulse/tmdb-fetcher:")]
    if not own:
        raise StepFailed(f"no localhost/cinepulse/tmdb-fetcher image in the chart: {refs}")
    tag = own[0].rsplit(":", 1)[1]
    return sorted({*refs, *(f"localhost/cinepulse/{name}:{tag}" for name in AIRFLOW_ONLY_IMAGES)})


def cluster_up(client: KubeClient, say: Say) -> str:
    refs = node_images()
    client.bring_up(refs, say)
    return f"{client.provider} cluster up, {len(refs)} images on the node (chart's and Airflow's)"


def operators(client: KubeClient) -> str:
    """The CRDs (the Spark operator's, for the manifests; the Prometheus operator's) and the
    Prometheus operator with one Prometheus."""
    crds = kube.apply_crds(client, monitoring.crd_files())
    return f"{crds}; {monitoring.install(client)}"


def namespace(client: KubeClient, k: Keys) -> str:
    client.kubectl("apply", "-f", "-", stdin=namespace_manifest(k))
    return f"namespace {NAMESPACE}, Secrets; {client.provide_storage()}"


def install(client: KubeClient, *, tmdb_base_url: str = "", upgrade: bool = False) -> str:
    """``helm install`` (``upgrade --install`` for the demo, which may run again) ``--wait``."""
    verb = ["upgrade", "--install"] if upgrade else ["install"]
    extra = ["--set", f"jobs.tmdbBaseUrl={tmdb_base_url}"] if tmdb_base_url else []
    err = client.helm(*verb, RELEASE, str(chart.chart_dir()), "-n", NAMESPACE, "-f",
                      str(values_file()), *extra, "--wait", "--wait-for-jobs",
                      "--timeout", INSTALL_TIMEOUT).stderr  # fmt: skip
    return "installed" + kube._warnings(err)
