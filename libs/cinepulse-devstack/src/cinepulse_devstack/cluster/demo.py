"""The demo on a cluster (``make demo CLUSTER=1``; ``CLUSTER=kind`` on a kind cluster): the
same demo as ``make demo`` (:mod:`cinepulse_devstack.demo`), with the platform installed on
the cluster by the chart instead of local processes.

1. the cluster up with the chart's images; the Prometheus operator; the namespace and its
   Secrets; ``helm upgrade --install --wait`` (:mod:`.release`, the e2e's steps);
2. TMDB metadata: the chart's fetcher CronJob run once as a Job (``full``), against the
   offline TMDB server started on this machine at an address the pods reach (the synthetic
   catalogue when the events are synthetic);
3. MovieLens (or the synthetic events) through the in-cluster gateway, reached by a
   ``kubectl port-forward`` bound to loopback, at a steady rate with a progress bar;
4. waits until every acknowledged event is archived in MongoDB and a fact (or quarantined)
   in PostgreSQL (read through port-forwards);
5. the Spark aggregates, the recommender's training and the reconciliation of the replay's
   window, each the chart's CronJob run once as a Job (the CronJobs are suspended:
   ``kubectl create job --from=cronjob/...`` is how an operator runs one by hand);
6. the Prometheus targets, where to look, and the demo's summary table. The release stays
   installed; ``make cluster-down`` (or ``make kind-down``) removes everything.

:func:`run_steps` (2 to 5) is also a step of the real-node e2e, on the e2e's release.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from cinepulse_common.settings import MongoSettings
from cinepulse_devstack import cluster, demo
from cinepulse_devstack.cluster import access, monitoring, release
from cinepulse_devstack.cluster.client import KubeClient, Say
from cinepulse_devstack.demo_events import count_archived, send_events, wait_for
from cinepulse_devstack.kube import NAMESPACE, StepFailed
from cinepulse_devstack.procs import StackError
from cinepulse_devstack.tmdb_offline import DatasetMissingError

#: the demo's token of the offline TMDB server (a demo credential, not a secret)
TMDB_TOKEN = "offline-read-token"  # noqa: S105
JOB_TIMEOUT_S = 900


# -- the chart's CronJobs, run once ---------------------------------------------------------


def job_from_cronjob(cronjob: dict[str, Any], *, args: list[str] | None = None,
                     env: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """The Job ``kubectl create job --from=cronjob/NAME`` makes (owned by the CronJob, so it
    goes with the release: the e2e found hand-made Jobs' pods left after an uninstall),
    with the first container's ``args`` and ``env`` changed and no retries (a demo reads
    the one pod's log)."""
    spec = copy.deepcopy(cronjob["spec"]["jobTemplate"]["spec"])
    spec["backoffLimit"] = 0
    container = spec["template"]["spec"]["containers"][0]
    if args is not None:
        container["args"] = args
    for name, value in (env or {}).items():
        container["env"] = [e for e in container.get("env", []) if e["name"] != name]
        container["env"].append({"name": name, "value": value})
    name = f"{cronjob['metadata']['name']}-{int(time.time())}"[:63]
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": cronjob["metadata"].get("namespace", NAMESPACE),
                         "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                              "name": cronjob["metadata"]["name"],
                                              "uid": cronjob["metadata"]["uid"], "controller": True}]},
            "spec": spec}  # fmt: skip


def run_cronjob(client: KubeClient, cronjob: str, *, args: list[str] | None = None,
                env: dict[str, str] | None = None, timeout_s: float = JOB_TIMEOUT_S) -> tuple[bool, str]:  # fmt: skip
    """The CronJob run once (:func:`job_from_cronjob`); waits for the Job and returns
    (succeeded, its pod's log)."""
    cj = json.loads(client.kubectl("get", "cronjob", cronjob, "-n", NAMESPACE, "-o", "json").stdout)
    job = job_from_cronjob(cj, args=args, env=env)
    name = job["metadata"]["name"]
    client.kubectl("create", "-f", "-", stdin=json.dumps(job))
    deadline = time.monotonic() + timeout_s
    while True:
        status = json.loads(
            client.kubectl("get", "job", name, "-n", NAMESPACE, "-o", "json").stdout
        )["status"]
        if status.get("succeeded") or status.get("failed"):
            break
        if time.monotonic() > deadline:
            raise StepFailed(f"job {name} not finished within {timeout_s:.0f}s")
        time.sleep(3)
    log = client.kubectl("logs", f"job/{name}", "-n", NAMESPACE, "--tail=-1", check=False).stdout
    return bool(status.get("succeeded")), log


def last_json(log: str, key: str) -> dict[str, Any]:
    """The last line of ``log`` that is a JSON object with ``key`` (the command's result;
    its log records are JSON too)."""
    for line in reversed(log.splitlines()):
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict) and key in obj:
                return obj
    return {}


# -- the offline TMDB server, where pods reach it ---------------------------------------------


@contextlib.contextmanager
def tmdb_server(address: str, catalogue: str = "auto") -> Iterator[str]:
    """The offline TMDB server on ``address`` (a free port) serving ``catalogue`` (its
    ``--catalogue``); yields its base URL."""
    with socket.socket() as s:
        s.bind((address, 0))
        port = s.getsockname()[1]
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed below, after the server
    proc = subprocess.Popen([sys.executable, "-m", "cinepulse_devstack.tmdb_offline", "--host",
                             address, "--port", str(port), "--token", TMDB_TOKEN,
                             "--catalogue", catalogue],
                            stdout=log, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    url = f"http://{address}:{port}"
    try:
        for _ in range(120):
            if proc.poll() is not None:
                log.seek(0)
                raise DatasetMissingError(f"the offline TMDB server exited: {log.read()[-500:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/__admin/stats", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        log.close()


# -- the steps ----------------------------------------------------------------------------------


def run_steps(
    client: KubeClient, opts: demo.DemoOptions, k: release.Keys, say: Say
) -> demo.DemoReport:
    """TMDB, replay, landing, aggregates, training, reconciliation on an installed release."""
    r = demo.DemoReport()
    name = release.fullname

    def timed(key: str, t0: float) -> None:
        r.timings[key] = time.monotonic() - t0

    # the events first: the movies they name decide the catalogue the TMDB server serves
    r.source, events = demo.demo_events(opts)
    catalogue = "synthetic" if demo.is_synthetic(r.source) else "tmdb-5000"
    say("==> TMDB metadata: the fetcher's CronJob as a Job (offline TMDB server on this machine)")
    t0 = time.monotonic()
    try:
        with tmdb_server(client.host_address(), catalogue) as url:
            ok, log = run_cronjob(client, name("tmdb-incremental"), args=["full"],
                                  env={"CINEPULSE_TMDB__BASE_URL": url, "CINEPULSE_TMDB__RATE_PER_S": "200"})  # fmt: skip
        if not ok:
            raise StepFailed(f"the TMDB fetcher's Job failed: {log[-1500:]}")
        # its summary: "tmdb-fetcher full: 48.5s" then "  fetched  3000", ...
        summary = [ln.split() for ln in log.splitlines() if ln.startswith("  ")]
        counts = {f[0]: f[1] for f in summary if len(f) == 2}
        say(f"    {counts.get('fetched', '?')} movies fetched, {counts.get('updated', '?')} "
            f"written, in {time.monotonic() - t0:.0f}s")  # fmt: skip
        r.movies_loaded = True
        timed("movies", t0)
    except DatasetMissingError as exc:
        say(f"    no movie metadata loaded: {exc}")

    r.user = demo.sample_user(events)
    say(f"==> replaying events through the in-cluster gateway at {opts.rate:,.0f}/s ({r.source})")
    window_start = datetime.now(UTC) - timedelta(seconds=1)
    with access.port_forward(client, NAMESPACE, f"svc/{name('gateway')}", 8080) as gw:
        r.sent = send_events(f"http://127.0.0.1:{gw}", k.write, events, rate_per_s=opts.rate)
    window_end = datetime.now(UTC) + timedelta(seconds=1)
    r.timings["send"] = r.sent.seconds
    for event_id, reason in r.sent.rejections:
        say(f"    rejected {event_id}: {reason}")

    say("==> waiting for the archiver (MongoDB) and Spark (PostgreSQL facts)")
    t0 = time.monotonic()
    ids = r.sent.accepted_ids
    with (
        access.port_forward(client, NAMESPACE, f"svc/{name('postgresql')}", 5432) as pg,
        access.port_forward(client, NAMESPACE, f"svc/{name('mongodb')}", 27017) as mongo,
    ):
        dsn = access.local_url(
            access.secret_value(client, NAMESPACE, name("postgresql"), "dsn"), pg
        )
        url = access.local_url(
            access.secret_value(client, NAMESPACE, name("mongodb"), "url"), mongo
        )
        r.acked_archived, _ = wait_for(lambda: count_archived(MongoSettings(url=SecretStr(url)), ids),
                               len(ids), opts.land_timeout_s)  # fmt: skip
        say(f"    archived {r.acked_archived:,}/{len(ids):,}")
        r.landed, _ = wait_for(_progress(lambda: demo.count_landed(dsn, ids), len(ids), say),
                               len(ids), opts.land_timeout_s)  # fmt: skip
    timed("land", t0)

    say("==> daily aggregates: the Spark CronJob as a Job (driver and executors as pods)")
    t0 = time.monotonic()
    ok, log = run_cronjob(client, name("spark-aggregates"))
    if not ok:
        raise StepFailed(f"the aggregates' Job failed: {log[-1500:]}")
    timed("aggregate", t0)

    say("==> training the recommender: its CronJob as a Job")
    t0 = time.monotonic()
    ok, log = run_cronjob(client, name("recommender-train"))
    r.training = last_json(log, "status") or {"status": "failed", "reason": log[-300:]}
    timed("train", t0)

    say("==> reconciliation of the replay's window: the quality CronJob as a Job")
    t0 = time.monotonic()
    ok, log = run_cronjob(client, name("quality-reconcile"), env={"CINEPULSE_GRACE_S": "0"},
                          args=["reconcile", "--from", window_start.isoformat(), "--to",
                                window_end.isoformat(), "--max-examples", "3"])  # fmt: skip
    r.reconcile = last_json(log, "counts")
    r.reconcile["exit"] = 0 if ok else 1
    timed("reconcile", t0)
    return r


def _progress(count: Callable[[], int], total: int, say: Say) -> Callable[[], int]:
    last = [-1]

    def counted() -> int:
        n = count()
        if n != last[0]:
            say(f"    facts or quarantine: {n:,}/{total:,}")
            last[0] = n
        return n

    return counted


def where_to_look(client: KubeClient, r: demo.DemoReport) -> str:
    kc, ns, name = client.kubeconfig(), NAMESPACE, release.fullname
    key = f"kubectl -n {ns} get secret {release.API_KEYS} -o jsonpath='{{.data.{release.CLIENT_KEY}}}' | base64 -d"
    return f"""
Where to look (the release stays installed; make cluster-down removes the cluster)
  export KUBECONFIG={kc}
  kubectl -n {ns} get pods
  kubectl -n {ns} port-forward svc/{name("api")} 8000 &
    curl -s 'localhost:8000/api/top_movies?window=week&limit=5'
    curl -s -H "X-API-Key: $({key})" localhost:8000/api/user_stats/{r.user}
  kubectl -n {ns} port-forward svc/{name("recommender")} 8001 &
    curl -s -H "X-API-Key: $({key})" 'localhost:8001/api/recommendations?user_id={r.user}&k=5'
  kubectl -n {ns} port-forward svc/{name("explorer")} 8501 &   # http://localhost:8501
  kubectl -n {monitoring.MONITORING_NS} port-forward svc/{monitoring.PROMETHEUS_SERVICE} {monitoring.PROMETHEUS_PORT} &
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cinepulse-cluster-demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--provider", choices=("local", "kind"), default="local")
    p.add_argument("--users", type=int, help="keep the first N MovieLens users (default all)")
    p.add_argument("--rate", type=float, default=500.0, help="events per second (500)")
    p.add_argument("--synthetic", type=int, help="N synthetic events instead of MovieLens")
    args = p.parse_args(argv)
    opts = demo.DemoOptions(users=args.users, rate=args.rate, synthetic=args.synthetic,
                            land_timeout_s=1800)  # fmt: skip
    client = cluster.client(args.provider)

    def say(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    t_all = time.monotonic()
    try:
        say(f"==> {release.cluster_up(client, say)}")
        say(f"==> {release.operators(client)}")
        k = release.keys(client, TMDB_TOKEN)
        say(f"==> {release.namespace(client, k)}")
        say("==> helm upgrade --install --wait (the chart, ci/cluster-values.yaml)")
        say(f"    {release.install(client, upgrade=True)}")
        r = run_steps(client, opts, k, say)
        say("==> Prometheus scrapes every Cinepulse target")
        targets = monitoring.check(client)
    except (StackError, httpx.HTTPError, OSError) as exc:
        print(f"demo on the {args.provider} cluster: {exc}", file=sys.stderr)
        return 1
    r.timings["total"] = time.monotonic() - t_all
    print(where_to_look(client, r))
    print(f"Prometheus: {targets[:600]}")
    demo.print_summary(r)
    ok = r.lost == 0 and r.reconcile.get("exit") == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
