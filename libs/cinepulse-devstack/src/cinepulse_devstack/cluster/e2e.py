"""The chart on a real Kubernetes node (``make cluster-e2e``, ``tests/e2e/test_cluster_e2e.py``).

Cluster up with the images the chart names imported; the namespace with Pod Security
"restricted" enforced; ``helm install --wait`` with ``ci/cluster-values.yaml`` (bundled
Kafka, PostgreSQL and MongoDB protocol from images built here, every service, Spark
started by ``spark-submit`` from the cluster); then, against real containers: every pod
running as a non-root user on a read-only root (Kafka's launcher excepted), the migration
hook's tables, the Spark driver and its executor pods, ``helm test``, the real Prometheus
operator's Prometheus scraping every target of the chart's monitors with the chart's rules
loaded (:mod:`.monitoring`) and sending its alerts to the operator's Alertmanager
(:mod:`.alerting`), events posted through the in-cluster gateway archived in
MongoDB and modelled as facts and read back through the api, the chart's Ingresses served
by a real Traefik (:mod:`.ingress`: routed by host, events through it archived and
modelled), ``helm upgrade`` rolling the
gateway while events are posted (acknowledged but lost must be 0), the demo's batch Jobs'
pushes in Prometheus through the Pushgateway, one of the chart's alerts fired on purpose and
received by Alertmanager, ``helm uninstall``
leaving no pod; cluster down, host restored. Each step's time, the pods and their
restarts, and the event counts go to ``results/cluster-e2e.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from pydantic import SecretStr

from cinepulse_common.paths import repo_root
from cinepulse_common.settings import MongoSettings
from cinepulse_devstack import chart, cluster, kube
from cinepulse_devstack import demo as local_demo
from cinepulse_devstack.cluster import (
    access,
    airflow_pods,
    alerting,
    demo,
    ingress,
    monitoring,
    release,
)
from cinepulse_devstack.cluster.client import KubeClient
from cinepulse_devstack.cluster.traffic import Stores, Traffic, fresh_events, post_events
from cinepulse_devstack.kube import NAMESPACE, RELEASE, Report, Step, StepFailed
from cinepulse_devstack.procs import StackError

#: containers whose root filesystem the chart leaves writable, and why (README: Kafka's
#: launcher writes its generated configuration)
WRITABLE_ROOT = {"kafka"}


@dataclass
class ClusterReport(Report):
    pods: list[dict[str, Any]] = field(default_factory=list)
    traffic: list[Traffic] = field(default_factory=list)

    def markdown(self) -> str:
        out = ["# The chart on a real Kubernetes node", "",
               f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `make cluster-e2e`", "",
               "| step | seconds | result | detail |", "| --- | ---: | --- | --- |"]  # fmt: skip
        for s in self.steps:
            detail = s.detail.replace("|", "/").replace("\n", " ")[:400]
            out.append(f"| {s.name} | {s.seconds:.1f} | {'ok' if s.ok else 'FAILED'} | {detail} |")
        out += [
            "",
            "| pod | phase | ready | restarts | containers |",
            "| --- | --- | --- | ---: | --- |",
        ]
        for p in self.pods:
            out.append(
                f"| {p['name']} | {p['phase']} | {p['ready']} | {p['restarts']} | {p['images']} |"
            )
        out += ["", "| events | sent | acknowledged | archived | modelled | acknowledged but lost | seconds |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for t in self.traffic:
            out.append(f"| {t.what} | {t.sent} | {t.acknowledged} | {t.archived} | {t.modelled} | "
                       f"{t.lost} | {t.seconds:.0f} |")  # fmt: skip
        return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ checks


def pod_rows(node: KubeClient) -> list[dict[str, Any]]:
    rows = []
    for p in node.get("pods", "-n", NAMESPACE):
        statuses = p.get("status", {}).get("containerStatuses") or []
        rows.append(
            {
                "name": p["metadata"]["name"],
                "phase": p.get("status", {}).get("phase", "?"),
                "ready": f"{sum(bool(s.get('ready')) for s in statuses)}/{len(statuses)}",
                "restarts": sum(int(s.get("restartCount", 0)) for s in statuses),
                "images": ", ".join(s.get("image", "?") for s in statuses),
                "container_ids": [s.get("containerID", "") for s in statuses],
                "containers": [s["name"] for s in statuses],
            }
        )
    return rows


def real_containers(node: KubeClient) -> str:
    """Every running pod's containers are containerd's, run as a non-root uid, and cannot
    write their root filesystem (but for :data:`WRITABLE_ROOT`)."""
    running = [p for p in pod_rows(node) if p["phase"] == "Running"]
    if not running:
        raise StepFailed("no running pod")
    bad = []
    for p in running:
        for cid, name in zip(p["container_ids"], p["containers"], strict=True):
            if not cid.startswith("containerd://"):
                bad.append(f"{p['name']}/{name}: container id {cid!r}")
                continue
            r = node.kubectl("exec", "-n", NAMESPACE, p["name"], "-c", name, "--",
                             "sh", "-c", "id -u; touch /.rw-probe 2>/dev/null && echo writable || echo read-only",
                             check=False)  # fmt: skip
            if r.returncode:
                bad.append(f"{p['name']}/{name}: exec failed: {r.stderr.strip()[:200]}")
                continue
            uid, root = ([*r.stdout.split(), "?", "?"])[:2]
            if uid == "0":
                bad.append(f"{p['name']}/{name} runs as root")
            if root != "read-only" and name not in WRITABLE_ROOT:
                bad.append(f"{p['name']}/{name}: root filesystem is {root}")
    # an ordinary install restarts nothing (the archiver did, before it waited for Kafka)
    for p in running:
        if p["restarts"]:
            prev = node.kubectl("logs", "-n", NAMESPACE, p["name"], "--previous", "--all-containers",
                                "--tail=3", check=False).stdout.strip()  # fmt: skip
            bad.append(f"{p['name']} restarted {p['restarts']}x: {prev[-300:]}")
    if bad:
        raise StepFailed("; ".join(bad))
    n = sum(len(p["containers"]) for p in running)
    return f"{n} containers in {len(running)} pods: containerd, non-root, read-only root (but {', '.join(sorted(WRITABLE_ROOT))}), none restarted"


def live_counters(proxy: str, at_least: int) -> str:
    """The archiver's live counters (faust tables) have counted the events: they need
    changelog topics with as many partitions as the sources (the real node found them
    crash-looping on a mismatch while archiving went on)."""
    archiver = access.service_url(proxy, NAMESPACE, release.fullname("archiver"), 6066)
    r = httpx.get(f"{archiver}/counters/events_per_minute", params={"minutes": 15}, timeout=30)
    if r.status_code != 200:
        raise StepFailed(f"archiver /counters/events_per_minute: {r.status_code} {r.text[:200]}")
    total = sum(sum(m["counts"].values()) for m in r.json()["minutes"])
    if total < at_least:
        raise StepFailed(
            f"the archiver's live counters hold {total} events, expected >= {at_least}"
        )
    return f"live counters: {total} events in the last 15 minutes"


def spark_pods(node: KubeClient) -> str:
    driver = [p for p in node.get("pods", "-n", NAMESPACE, "-l", "spark-role=driver")
              if p["status"].get("phase") == "Running"]  # fmt: skip
    executors = [p for p in node.get("pods", "-n", NAMESPACE, "-l", "spark-role=executor")
                 if p["status"].get("phase") == "Running"]  # fmt: skip
    if not driver or not executors:
        raise StepFailed(f"Spark: {len(driver)} driver and {len(executors)} executor pods running")
    return (f"driver {driver[0]['metadata']['name']}; executors "
            f"{', '.join(e['metadata']['name'] for e in executors)} (created by the driver)")  # fmt: skip


# ------------------------------------------------------------------------------ the run


def e2e(*, keep: bool = False, progress: Callable[[str], None] | None = None,
        results: Path | None = None, provider: str = "local",
        demo_opts: local_demo.DemoOptions | None = None) -> ClusterReport:  # fmt: skip
    report = ClusterReport()
    say = progress or (lambda s: None)
    node = cluster.client(provider)
    args = ["-n", NAMESPACE, "-f", str(release.values_file())]
    keys = release.keys(node, demo.TMDB_TOKEN)
    write_key, api_key = keys.write, keys.api
    demo_opts = demo_opts or local_demo.DemoOptions(users=20, rate=300, synthetic_default=1500,
                                              land_timeout_s=600)  # fmt: skip

    def step(name: str, fn: Callable[[], str]) -> None:
        say(f"==> [cluster-e2e {time.strftime('%H:%M:%S')}] {name}")
        t0 = time.monotonic()
        try:
            detail = fn()
        except (StackError, httpx.HTTPError, psycopg.Error, KeyError, ValueError) as exc:
            report.steps.append(Step(name, False, str(exc), time.monotonic() - t0))
            raise
        report.steps.append(Step(name, True, detail, time.monotonic() - t0))
        say(f"    {detail}")

    def helm_test() -> str:
        # no --logs: the test pod is deleted once it succeeds (hook-delete-policy), and helm
        # then fails to fetch its logs; a failed pod is kept and named in helm's error
        out = node.helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "10m").stdout
        phases = [
            line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Phase:")
        ]
        if not phases or any(p != "Succeeded" for p in phases):
            raise StepFailed(f"helm test: {out[-1500:]}")
        return f"{len(phases)} test hooks Succeeded (gateway and api checked; an event into test-only topics, read back, deleted)"

    def stores(forward_pg: int, forward_mongo: int) -> Stores:
        pg = access.secret_value(node, NAMESPACE, release.fullname("postgresql"), "dsn")
        mongo = access.secret_value(node, NAMESPACE, release.fullname("mongodb"), "url")
        return Stores(
            MongoSettings(url=SecretStr(access.local_url(mongo, forward_mongo))),
            access.local_url(pg, forward_pg),
        )

    def migrations(db: Stores) -> str:
        with psycopg.connect(db.dsn) as conn:
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            facts = conn.execute("SELECT count(*) FROM information_schema.tables "
                                 "WHERE table_name LIKE 'fact_%%'").fetchone()  # fmt: skip
        if not version or not facts or not facts[0]:
            raise StepFailed("the migration hook left no schema")
        return f"alembic version {version[0]}, {facts[0]} fact tables"

    def roundtrip(proxy: str, db: Stores) -> str:
        gateway = access.service_url(proxy, NAMESPACE, release.fullname("gateway"), 8080)
        t = Traffic("posted through the in-cluster gateway")
        events = fresh_events(300, seed=int(time.time()))
        post_events(gateway, write_key, events, t)
        report.traffic.append(db.tally(t, timeout_s=300))
        if t.lost:
            raise StepFailed(f"{t.lost} acknowledged events not archived and modelled: "
                             f"{t.archived} archived, {t.modelled} modelled of {t.acknowledged}")  # fmt: skip
        counted = kube._eventually(lambda: live_counters(proxy, t.acknowledged), seconds=90)
        api = access.service_url(proxy, NAMESPACE, release.fullname("api"), 8000)
        user = str(events[0]["user_id"])
        r = httpx.get(f"{api}/api/user_stats/{user}", headers={"X-API-Key": api_key}, timeout=30)
        if r.status_code != 200:
            raise StepFailed(f"api /api/user_stats/{user}: {r.status_code} {r.text[:300]}")
        return (f"{t.acknowledged}/{t.sent} acknowledged, all archived and modelled; {counted}; "
                f"api user_stats of {user}: {r.text[:160]}")  # fmt: skip

    def through_ingress(db: Stores) -> str:
        detail, t = ingress.check(node, db, write_key)
        report.traffic.append(t)
        return detail

    def rolling_upgrade(proxy: str, db: Stores) -> str:
        gateway = access.service_url(proxy, NAMESPACE, release.fullname("gateway"), 8080)
        before = {p["metadata"]["name"] for p in node.get("pods", "-n", NAMESPACE, "-l",
                  "app.kubernetes.io/component=gateway")}  # fmt: skip
        t = Traffic("posted during helm upgrade (gateway rolled)")
        events = fresh_events(1500, seed=int(time.time()) + 1)
        errors: list[BaseException] = []

        def send() -> None:
            try:
                post_events(gateway, write_key, events, t, rate_per_s=25)
            except BaseException as exc:  # reported below
                errors.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        time.sleep(5)
        env = json.dumps([{"name": "CINEPULSE_E2E_ROLLOUT", "value": str(int(time.time()))}])
        node.helm("upgrade", RELEASE, str(chart.chart_dir()), *args, "--set-json",
                  f"gateway.extraEnv={env}", "--wait", "--timeout", release.INSTALL_TIMEOUT)  # fmt: skip
        sender.join(900)
        if errors:
            raise StepFailed(f"sending during the upgrade: {errors[0]}")
        after = {p["metadata"]["name"] for p in node.get("pods", "-n", NAMESPACE, "-l",
                 "app.kubernetes.io/component=gateway")}  # fmt: skip
        if after & before:
            raise StepFailed(f"the gateway was not rolled: {sorted(after & before)} still there")
        report.traffic.append(db.tally(t, timeout_s=300))
        if t.lost:
            raise StepFailed(f"acknowledged but lost: {t.lost} ({t.archived} archived, "
                             f"{t.modelled} modelled of {t.acknowledged})")  # fmt: skip
        return (f"gateway pods {sorted(before)} -> {sorted(after)}; {t.acknowledged}/{t.sent} "
                f"acknowledged, acknowledged but lost 0")  # fmt: skip

    def airflow_dags() -> str:
        pg_name = release.fullname("postgresql")
        with access.port_forward(node, NAMESPACE, f"svc/{pg_name}", 5432) as pg:
            owner = access.secret_value(node, NAMESPACE, pg_name, "dsn")
            quality = access.secret_value(
                node, NAMESPACE, release.fullname("postgresql-logins"), "quality-dsn"
            )
            results = airflow_pods.run(
                node, access.local_url(owner, pg), access.local_url(quality, pg)
            )
        for r in results:  # one step per DAG (before this summary step)
            report.steps.append(Step(f"Airflow DAG {r.dag}: its pods on the node", r.ok,
                                     r.detail, r.seconds))  # fmt: skip
        failed = [r.dag for r in results if not r.ok]
        if failed:
            raise StepFailed(f"DAGs failed on the cluster: {', '.join(failed)} (steps below)")
        return f"{len(results)} DAGs ran their KubernetesPodOperator tasks as real pods"

    def uninstall() -> str:
        node.helm(
            "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", release.INSTALL_TIMEOUT
        )
        kube._eventually(lambda: _no_pods(node), seconds=180)
        kept = [f"{o['kind']} {o['metadata']['name']}"
                for o in node.get("secrets,pvc", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}")]  # fmt: skip
        return "no pod left" + (
            f"; kept by helm.sh/resource-policy: {', '.join(kept)}" if kept else ""
        )

    try:
        step("cluster up (containerd, kubelet, kube-proxy, CoreDNS; images imported)",
             lambda: release.cluster_up(node, lambda s: say(f"    {s}")))  # fmt: skip
        step("Prometheus operator and Prometheus (CRDs: Spark's, Prometheus')",
             lambda: release.operators(node))  # fmt: skip
        step("Alertmanager (the operator's); Prometheus sends to it",
             lambda: alerting.install(node))  # fmt: skip
        step(f"Traefik ingress controller (IngressClass {ingress.INGRESS_CLASS})",
             lambda: ingress.install(node))  # fmt: skip
        step("namespace, Secrets, volumes", lambda: release.namespace(node, keys))
        step("Pod Security enforced (control)", lambda: kube._pod_security_enforced(node))
        step("helm install --wait (real pods)", lambda: release.install(node))
        step(
            "Deployments available",
            lambda: kube._eventually(lambda: kube._deployments_available(node)),
        )
        step(
            "StatefulSets ready, claims bound",
            lambda: kube._eventually(lambda: kube._statefulsets_ready(node)),
        )
        step("real containers: non-root, read-only root, no restart", lambda: real_containers(node))
        step(
            "Spark streaming: driver and executor pods",
            lambda: kube._eventually(lambda: spark_pods(node), seconds=300, every=5),
        )
        step("helm test", helm_test)
        step("Prometheus scrapes every Cinepulse target; rules loaded",
             lambda: monitoring.check(node))  # fmt: skip
        with (
            access.api_proxy(node) as proxy,
            access.port_forward(
                node, NAMESPACE, f"svc/{release.fullname('postgresql')}", 5432
            ) as pg,
            access.port_forward(
                node, NAMESPACE, f"svc/{release.fullname('mongodb')}", 27017
            ) as mongo,
        ):
            db = stores(pg, mongo)
            step("migrations ran (the install's Job)", lambda: migrations(db))
            step(
                "events: gateway -> Kafka -> MongoDB + Spark -> PostgreSQL -> api",
                lambda: roundtrip(proxy, db),
            )
            step("requests through the Traefik ingress: gateway, api, recommender",
                 lambda: through_ingress(db))  # fmt: skip
            step("helm upgrade rolls the gateway under load", lambda: rolling_upgrade(proxy, db))
        jobs_from = time.time()
        step("the demo's steps: TMDB Job, replay, aggregates, training, reconciliation",
             lambda: demo_steps(node, demo_opts, keys, report, say))  # fmt: skip
        step("batch Jobs' metrics: Pushgateway -> Prometheus (honorLabels)",
             lambda: alerting.batch_metrics(node, since=jobs_from))  # fmt: skip
        step("an alert of the chart fired on purpose reaches Alertmanager",
             lambda: alerting.fire(node))  # fmt: skip
        step("Airflow DAGs: KubernetesPodOperator pods on the node", airflow_dags)
        report.pods = pod_rows(node)
        if not keep:
            step("helm uninstall", uninstall)
    except (StackError, httpx.HTTPError, psycopg.Error, KeyError, ValueError, OSError) as exc:
        if not report.steps or report.steps[-1].ok:
            report.steps.append(Step("unexpected error", False, f"{type(exc).__name__}: {exc}", 0))
        report.pods = report.pods or _safe_pods(node)
        _dump(node, say)
    finally:
        if not keep:
            t0 = time.monotonic()
            try:
                node.tear_down(lambda s: say(f"    {s}"))
                report.steps.append(
                    Step("cluster down, host restored", True, "", time.monotonic() - t0)
                )
            except StackError as exc:
                report.steps.append(
                    Step("cluster down, host restored", False, str(exc), time.monotonic() - t0)
                )
        out = results or repo_root() / "results" / "cluster-e2e.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.markdown())
        say(f"report: {out}")
    return report


def demo_steps(node: KubeClient, opts: local_demo.DemoOptions, keys: release.Keys,
               report: ClusterReport, say: Callable[[str], None]) -> str:  # fmt: skip
    """The demo on the cluster's steps (:func:`.demo.run_steps`) on the e2e's release: the
    chart's CronJobs run as Jobs, MovieLens through the gateway, nothing acknowledged lost."""
    r = demo.run_steps(node, opts, keys, lambda s: say(f"    {s}"))
    report.traffic.append(Traffic(f"the demo's replay ({r.source.split(', replayed')[0]})", r.sent.sent,
                                  r.sent.accepted, r.acked_archived, r.landed, r.sent.seconds))  # fmt: skip
    counts, training = r.reconcile.get("counts", {}), r.training
    if r.lost or r.reconcile.get("exit") != 0:
        raise StepFailed(f"acknowledged but lost {r.lost}; reconciliation {r.reconcile}")
    if not r.movies_loaded or training.get("status") not in ("published", "rejected"):
        raise StepFailed(f"movies loaded: {r.movies_loaded}; training: {training}")
    return (f"{r.sent.accepted:,}/{r.sent.sent:,} acknowledged, {r.landed:,} facts or quarantined, "
            f"reconciled ({counts.get('kafka_records')} Kafka records, {counts.get('archived')} "
            f"archived, {counts.get('facts')} facts); model {training.get('version')} "
            f"{training.get('status')}; {', '.join(f'{k} {v:.0f}s' for k, v in r.timings.items())}")  # fmt: skip


def _no_pods(node: KubeClient) -> str:
    left = [p["metadata"]["name"] for p in node.get("pods", "-n", NAMESPACE)]
    if left:
        raise StepFailed(f"pods left after uninstall: {left}")
    return "none"


def _safe_pods(node: KubeClient) -> list[dict[str, Any]]:
    try:
        return pod_rows(node)
    except StackError:
        return []


def _dump(node: KubeClient, say: Callable[[str], None]) -> None:
    """The namespace's objects and events and the failing pods' logs, for the failure."""
    out = node.failure_file()
    parts = []
    for args in (["get", "all,pvc,events", "-n", NAMESPACE, "-o", "wide"],
                 ["get", "pods", "-A", "-o", "wide"]):  # fmt: skip
        parts.append(node.kubectl(*args, check=False).stdout)
    for p in _safe_pods(node):
        ready, total = p["ready"].split("/")
        if p["phase"] != "Running" or p["restarts"] or ready != total:
            for c in p["containers"]:
                r = node.kubectl(
                    "logs", "-n", NAMESPACE, p["name"], "-c", c, "--tail=60", check=False
                )
                parts.append(f"--- logs {p['name']}/{c}\n{r.stdout}{r.stderr}")
    out.write_text("\n".join(parts))
    say(f"cluster state at the failure: {out}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    missing = [] if "kind" in args else cluster.missing_prerequisites()
    if missing:
        print("cluster-e2e cannot run; missing:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 2
    p = argparse.ArgumentParser(prog="cinepulse-cluster-e2e", description=__doc__)
    p.add_argument("--provider", choices=("local", "kind"), default="local")
    p.add_argument("--keep", action="store_true", help="leave the release and cluster up")
    opts = p.parse_args(args)
    report = e2e(keep=opts.keep, provider=opts.provider,
                 progress=lambda s: print(s, file=sys.stderr, flush=True))  # fmt: skip
    print(report.table())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
