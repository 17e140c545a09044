"""Alertmanager and the batch jobs' metrics on the real node (issue 19).

:func:`install` adds one ``Alertmanager`` of the Prometheus operator (upstream's, built from
the Go module proxy by scripts/k8s-tools.sh, run FROM scratch) to the monitoring namespace,
with a configuration routing everything to a receiver that notifies no one (its v2 API lists
every alert it received, whatever the route), and points the e2e's ``Prometheus`` at it.

:func:`batch_metrics` asks Prometheus, through the API server's service proxy, for the series
the demo's Jobs pushed to the release's Pushgateway (scraped with honorLabels: the pushed
``job`` label is kept). :func:`fire` pushes the one metric of the chart's
``CinepulseStreamingDataLoss`` alert (no ``for``) for a query of its own, waits until the
alert is in Alertmanager's ``/api/v2/alerts`` with the chart's labels, then deletes the push.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import yaml

from cinepulse_devstack import kube
from cinepulse_devstack.cluster import access, images, release
from cinepulse_devstack.cluster.client import KubeClient
from cinepulse_devstack.cluster.monitoring import (
    MONITORING_NS,
    PROMETHEUS,
    PROMETHEUS_PORT,
    PROMETHEUS_SERVICE,
    built_version,
    restricted_pod,
)
from cinepulse_devstack.kube import NAMESPACE, StepFailed

ALERTMANAGER = "cinepulse"
#: the operator governs the Alertmanager StatefulSet with this headless Service ("web")
ALERTMANAGER_SERVICE, ALERTMANAGER_PORT = "alertmanager-operated", 9093
FIELD_MANAGER = "cinepulse-e2e-alerting"
PUSHGATEWAY_PORT = 9091

#: the series each batch Job pushes (job label as the Job pushes it: cinepulse_common.jobs).
#: The Spark streaming driver pushes only on a data-loss stop (the alert below)
PUSHED = {
    "cinepulse-tmdb-fetcher": ("cinepulse_tmdb_requests_total", "push_time_seconds"),
    "cinepulse-recommender-training": (
        "cinepulse_recommender_training_last_success_timestamp_seconds",
        "push_time_seconds",
    ),
    "cinepulse-quality": (
        "cinepulse_quality_last_run_timestamp_seconds",
        "cinepulse_quality_drift",
        "push_time_seconds",
    ),
}

#: the chart's alert fired on purpose: ``max by (query) (cinepulse_spark_data_loss_stop) == 1``
#: with no ``for``, so it fires at the first evaluation after the scrape that sees the push;
#: pushed for a query no streaming job has, so the real ``events`` group is never touched
ALERT, ALERT_JOB, ALERT_QUERY = "CinepulseStreamingDataLoss", "cinepulse-spark-data-loss", "e2e"
ALERT_LABELS = {"alertname": ALERT, "severity": "critical", "query": ALERT_QUERY}
#: scrape (30 s) + rule evaluation (30 s) + Prometheus' send to Alertmanager, twice over
FIRE_SECONDS = 180


def config() -> str:
    """Alertmanager's configuration: every alert to a receiver without notifiers."""
    return yaml.safe_dump({"route": {"receiver": "null", "group_by": ["alertname"]},
                           "receivers": [{"name": "null"}]})  # fmt: skip


def manifests(alertmanager_image: str) -> str:
    version = built_version("alertmanager")
    docs: list[dict[str, Any]] = [
        # the operator reads the configuration from the Secret alertmanager-<name>
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": f"alertmanager-{ALERTMANAGER}", "namespace": MONITORING_NS},
         "stringData": {"alertmanager.yaml": config()}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "Alertmanager",
         "metadata": {"name": ALERTMANAGER, "namespace": MONITORING_NS},
         "spec": {
             "image": alertmanager_image,
             "version": version,
             "imagePullPolicy": "Never",
             # one replica: the operator starts it without clustering (no mesh to join)
             "replicas": 1,
             "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                           "limits": {"memory": "128Mi"}},
             "securityContext": {**restricted_pod(), "fsGroup": 65534},
         }},
        # only the field this module owns: monitoring.install applies the rest of the
        # Prometheus (another field manager), so neither apply removes the other's fields
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
         "metadata": {"name": PROMETHEUS, "namespace": MONITORING_NS},
         "spec": {"alerting": {"alertmanagers": [
             {"namespace": MONITORING_NS, "name": ALERTMANAGER_SERVICE, "port": "web",
              "apiVersion": "v2"}]}}},
    ]  # fmt: skip
    return yaml.safe_dump_all(docs, sort_keys=False)


def install(node: KubeClient) -> str:
    """The Alertmanager, applied, Available; the Prometheus pointed at it."""
    image = images.binary_image("alertmanager")
    node.load_images([image], lambda s: None)  # imported at cluster up; a node up before
    node.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-",
                 stdin=manifests(image))  # fmt: skip
    try:
        node.kubectl("-n", MONITORING_NS, "wait", "--for=condition=Available",
                     f"alertmanager/{ALERTMANAGER}", "--timeout=240s", timeout=260)  # fmt: skip
    except StepFailed as exc:
        seen = node.kubectl("get", "alertmanager,statefulsets,pods", "-n", MONITORING_NS,
                            check=False).stdout  # fmt: skip
        log = node.kubectl("logs", "-n", MONITORING_NS, f"statefulset/alertmanager-{ALERTMANAGER}",
                           "--all-containers", "--tail=15", check=False)  # fmt: skip
        raise StepFailed(f"{exc}\n{seen}\n{(log.stdout or log.stderr)[-1500:]}") from None
    pods = node.get("pods", "-n", MONITORING_NS, "-l", f"alertmanager={ALERTMANAGER}")
    return (f"Alertmanager {built_version('alertmanager')} ({image}) Available: "
            f"{', '.join(p['metadata']['name'] for p in pods)}; Prometheus {PROMETHEUS} sends "
            f"to {ALERTMANAGER_SERVICE}.{MONITORING_NS}:web (API v2)")  # fmt: skip


def _get(url: str, params: dict[str, Any] | None = None) -> Any:
    try:
        r = httpx.get(url, params=params, timeout=15)
    except httpx.HTTPError as exc:
        raise StepFailed(f"{url}: {type(exc).__name__} {exc}") from None
    if r.status_code != 200:
        raise StepFailed(f"{url}: HTTP {r.status_code} {r.text[:300]}")
    return r.json()


def _series(prometheus: str, selector: str) -> list[dict[str, Any]]:
    data = _get(f"{prometheus}/api/v1/query", {"query": selector})["data"]["result"]
    return list(data)


def batch_metrics(node: KubeClient, since: float, seconds: int = 150) -> str:
    """Every series of :data:`PUSHED` is in Prometheus with its Job's ``job`` label (kept by
    honorLabels), from the release's Pushgateway, pushed after ``since`` (Unix time)."""
    pushgateway = release.fullname("pushgateway")
    with access.api_proxy(node) as proxy:
        prometheus = access.service_url(proxy, MONITORING_NS, PROMETHEUS_SERVICE, PROMETHEUS_PORT)

        def once() -> str:
            missing, found = [], []
            for job, names in PUSHED.items():
                for name in names:
                    rows = _series(prometheus, f'{name}{{job="{job}",service="{pushgateway}"}}')
                    if not rows:
                        missing.append(f'{name}{{job="{job}"}}')
                        continue
                    found.append(f"{name}{{job={job}}} x{len(rows)}")
                    if name == "push_time_seconds":
                        pushed = max(float(r["value"][1]) for r in rows)
                        if pushed < since:
                            missing.append(f"{job}: last push {time.time() - pushed:.0f}s ago, "
                                           f"before the e2e's Jobs ran")  # fmt: skip
            if missing:
                raise StepFailed(f"not in Prometheus (scraped from {pushgateway} with "
                                 f"honorLabels): {', '.join(missing)}; found: {found}")  # fmt: skip
            return f"from {pushgateway}: {'; '.join(found)}"

        return kube._eventually(once, seconds=seconds, every=10)


def fire(node: KubeClient) -> str:
    """The chart's :data:`ALERT`, fired by a push to the release's Pushgateway, received by
    Alertmanager with the chart's labels; the push deleted again (even on failure)."""
    pushgateway = release.fullname("pushgateway")
    with access.api_proxy(node) as proxy:
        group = (f"{access.service_url(proxy, NAMESPACE, pushgateway, PUSHGATEWAY_PORT)}"
                 f"/metrics/job/{ALERT_JOB}/query/{ALERT_QUERY}")  # fmt: skip
        prometheus = access.service_url(proxy, MONITORING_NS, PROMETHEUS_SERVICE, PROMETHEUS_PORT)
        am = access.service_url(proxy, MONITORING_NS, ALERTMANAGER_SERVICE, ALERTMANAGER_PORT)
        # Prometheus must know its Alertmanager, or the alert fires and goes nowhere
        active = _get(f"{prometheus}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
        if not active:
            raise StepFailed(f"Prometheus {PROMETHEUS} has discovered no Alertmanager")
        t0 = time.monotonic()
        r = httpx.put(group, content="# TYPE cinepulse_spark_data_loss_stop gauge\n"
                      "cinepulse_spark_data_loss_stop 1\n", timeout=15)  # fmt: skip
        if r.status_code not in (200, 202):
            raise StepFailed(f"push to {pushgateway}: HTTP {r.status_code} {r.text[:300]}")
        try:

            def received() -> str:
                alerts = _get(f"{am}/api/v2/alerts", {"filter": f'alertname="{ALERT}"'})
                ours = [a for a in alerts
                        if all(a["labels"].get(k) == v for k, v in ALERT_LABELS.items())]  # fmt: skip
                if not ours:
                    firing = [a["labels"].get("alertname") for a in alerts]
                    raise StepFailed(f"{ALERT} with {ALERT_LABELS} not in Alertmanager's "
                                     f"/api/v2/alerts after {time.monotonic() - t0:.0f}s "
                                     f"(alerts named {ALERT} there: {firing})")  # fmt: skip
                a = ours[0]
                return (f"{ALERT} {{{', '.join(f'{k}={v}' for k, v in sorted(a['labels'].items()))}}} "
                        f"state {a['status']['state']}, received {time.monotonic() - t0:.0f}s "
                        f"after the push")  # fmt: skip

            seen = kube._eventually(received, seconds=FIRE_SECONDS, every=5)
        finally:
            d = httpx.delete(group, timeout=15)
        if d.status_code not in (200, 202):
            raise StepFailed(f"{seen}; but deleting the pushed group: HTTP {d.status_code}")
        return (f"{seen}; via Prometheus ({len(active)} Alertmanager discovered); pushed group "
                f"job={ALERT_JOB}/query={ALERT_QUERY} deleted")  # fmt: skip
