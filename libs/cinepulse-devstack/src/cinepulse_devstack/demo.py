"""``cinepulse-stack demo`` (``make demo``): the whole platform on sample data, end to end.

1. the local stack (Kafka, PostgreSQL, MongoDB protocol, Prometheus, Pushgateway), migrated;
2. the services: event gateway, archiver, Spark streaming, api, recommender, explorer (and
   the offline TMDB server);
3. TMDB metadata through the fetcher's own CLI (the 3,000-movie set, offline; with
   synthetic events, the offline server's synthetic catalogue of 300 movies they name);
4. MovieLens ratings and tags replayed through the gateway as frontend events at a steady
   rate, with a progress bar (:mod:`cinepulse_devstack.replay`); when the data sets are not
   there, a small seeded synthetic generator instead, so a fresh clone works on its own;
5. waits until the archiver has committed every record written (it commits after MongoDB
   has the batch) and every acknowledged event is a fact (or in quarantine) in PostgreSQL;
6. the daily aggregates (Spark batch), then trains the recommender and waits for the server
   to load the new model;
7. reconciles the replay's time window across Kafka, MongoDB and PostgreSQL (the same
   command the ``data_quality`` DAG runs; its metrics go to the Pushgateway);
8. checks every Prometheus target is up, prints where to look (URLs, sample calls) and a
   summary table. Exit code 0 only when nothing acknowledged is missing.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import httpx
import psycopg

from cinepulse_devstack.demo_events import SendResult, send_events, synthetic_events, wait_for
from cinepulse_devstack.procs import StackError
from cinepulse_devstack.stack import Stack
from cinepulse_devstack.tmdb_offline import DatasetMissingError

FACT_TABLES = ("fact_watch", "fact_rating", "fact_comment", "fact_click")
#: the reconciliation's kinds of drift (cinepulse_quality.reconcile.DRIFT_KINDS)
DRIFT = ("not_archived", "not_modelled", "staged_without_fact", "acknowledged_not_in_kafka")


@dataclass
class DemoOptions:
    #: keep the first N MovieLens users (None: all 610)
    users: int | None = None
    #: events per second through the gateway
    rate: float = 1000.0
    #: the MovieLens history is replayed into the last this many days
    span_days: float = 28.0
    #: use the synthetic generator (this many events) even when MovieLens is there
    synthetic: int | None = None
    #: synthetic events sent when the data sets are absent
    synthetic_default: int = 5000
    #: longest wait for the archiver / Spark to land everything
    land_timeout_s: float = 600.0


@dataclass
class DemoReport:
    source: str = ""
    sent: SendResult = field(default_factory=SendResult)
    movies_loaded: bool = False
    landed: int = 0
    #: acknowledged ids found in MongoDB (the demo on a cluster counts them itself)
    acked_archived: int = 0
    reconcile: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    targets: list[tuple[str, str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    user: str = "demo-user-1"

    @property
    def archived(self) -> int:
        return int(self.reconcile.get("counts", {}).get("archived", 0))

    @property
    def lost(self) -> int:
        """Acknowledged but missing somewhere: not in Kafka, not archived, not modelled (the
        reconciliation's drift), or not landed in PostgreSQL by the end of the wait."""
        drift = self.reconcile.get("differences", {})
        missing = sum(int(drift.get(k, 0)) for k in DRIFT)
        return max(missing, self.sent.accepted - self.landed)


def step(title: str) -> None:
    print(f"\n==> {title}", file=sys.stderr, flush=True)


def _job_env(stack: Stack, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEPULSE_")}
    return env | stack.infra_env() | {"CINEPULSE_LOG_JSON": "false"} | extra


def run_job(
    stack: Stack, module: str, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` with the stack's variables; stderr (progress) goes to the
    terminal, stdout is returned."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=_job_env(stack, **extra),
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )


def count_landed(dsn: str, event_ids: list[str]) -> int:
    """How many of the ids are a fact (any fact table) or in quarantine."""
    union = " UNION ".join(
        f"SELECT event_id FROM {t} WHERE event_id = ANY(%(ids)s::uuid[])"
        for t in (*FACT_TABLES, "quarantine")
    )
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM ({union}) AS f", {"ids": event_ids}).fetchone()
    return int(row[0]) if row else 0


def demo_events(opts: DemoOptions) -> tuple[str, list[dict[str, Any]]]:
    """The events to replay and a line saying where they come from."""
    if opts.synthetic is None:
        from cinepulse_devstack.replay import movielens_events

        try:
            events = movielens_events(users=opts.users, span_days=opts.span_days)
        except DatasetMissingError as exc:
            print(f"MovieLens not found ({exc}); using the synthetic generator", file=sys.stderr)
        else:
            ratings = sum(e["event_type"] == "rate" for e in events)
            users = len({e["user_id"] for e in events})
            return (
                f"MovieLens: {ratings:,} ratings and {len(events) - ratings:,} tags of "
                f"{users:,} users, replayed into the last {opts.span_days:g} days",
                events,
            )
    n = opts.synthetic or opts.synthetic_default
    return (
        f"synthetic: {n:,} seeded events of every type on the synthetic TMDB catalogue",
        synthetic_events(n),
    )


def emotion_model() -> str:
    """The emotion model Spark classifies comments with, in one line (its version, whether
    it is a demo model trained on the shipped sample, its macro-F1), or why there is none."""
    try:
        from cinepulse_emotion import EmotionClassifier, EmotionModelError
    except ImportError as exc:
        return f"(not installed: {exc})"
    try:
        return EmotionClassifier.load().describe()
    except EmotionModelError as exc:
        return f"(none: {exc})"


def is_synthetic(source: str) -> bool:
    """Whether :func:`demo_events` chose the synthetic events (which name the movies of the
    offline TMDB server's synthetic catalogue, not those of the TMDB 5000 set)."""
    return source.startswith("synthetic")


def prometheus_targets(stack: Stack) -> list[tuple[str, str, str]]:
    """(name, health, last error) of every active target; a service is named as in the
    stack (its target carries the cluster's labels: ``job="cp-cinepulse-gateway"``, ...)."""
    r = httpx.get(f"{stack.prometheus.url}/api/v1/targets?state=active", timeout=5)
    r.raise_for_status()
    by_port = {p: c.name for c in stack.services for p in c.ports}
    out = []
    for t in r.json()["data"]["activeTargets"]:
        port = urlparse(t["scrapeUrl"]).port
        name = by_port.get(port or 0) or t["labels"].get("job", "?")
        out.append((name, t["health"], t.get("lastError", "")))
    return sorted(out)


def wait_targets_up(stack: Stack, timeout_s: float = 45.0) -> list[tuple[str, str, str]]:
    deadline = time.monotonic() + timeout_s
    while True:
        targets = prometheus_targets(stack)
        if all(h == "up" for _, h, _ in targets) or time.monotonic() > deadline:
            return targets
        time.sleep(2.0)


def wait_model_served(stack: Stack, version: str, user: str, timeout_s: float = 60.0) -> bool:
    """Until the recommender answers with model ``version`` (it polls the registry); asked
    as the stack's ``demo`` client (internal: any user's recommendations)."""
    key = {"X-API-Key": stack.recommender.demo_key()}

    def served() -> int:
        try:
            r = httpx.get(
                f"{stack.recommender.url}/api/recommendations",
                params={"user_id": user, "k": 1},
                headers=key,
                timeout=2,
            )
            return int(r.status_code == 200 and r.json().get("model_version") == version)
        except httpx.HTTPError:
            return 0

    n, _ = wait_for(served, 1, timeout_s)
    return n == 1


def run_demo(stack: Stack, opts: DemoOptions) -> int:
    report = DemoReport()
    t_all = time.monotonic()

    step("the local stack: Kafka, PostgreSQL, MongoDB protocol, Prometheus, Pushgateway")
    stack.up()
    from cinepulse_migrations.cli import upgrade

    upgrade(stack.postgres.admin_dsn(), "head")

    step("the services")
    source, events = demo_events(opts)
    # the movies the events name: MovieLens's are in the TMDB 5000 set (the replay keeps
    # only those), the synthetic events' in the offline server's synthetic catalogue
    tmdb = stack.tmdb_offline
    tmdb.catalogue = "synthetic" if is_synthetic(source) else "tmdb-5000"
    served = tmdb.served_catalogue() if tmdb.alive() else None
    if served is not None and served != tmdb.catalogue:
        say = f"  {tmdb.name} serves {served}: restarting it for {tmdb.catalogue}"
        print(say, file=sys.stderr)
        stack.down([tmdb.name])
    services = [stack.gateway.name, stack.archiver.name, stack.spark_stream.name, tmdb.name]
    stack.up([*services, stack.api.name, stack.recommender.name, stack.explorer.name])
    print(f"  comments are classified by the emotion model {emotion_model()}", file=sys.stderr)

    catalogue = (
        "the synthetic catalogue, 300 movies"
        if tmdb.catalogue == "synthetic"
        else "the TMDB 5000 set, 3,000 movies"
    )
    step(f"TMDB metadata through the fetcher (offline TMDB server: {catalogue})")
    t0 = time.monotonic()
    rc = run_job(
        stack,
        "cinepulse_tmdb_fetcher",
        "full",
        CINEPULSE_TMDB__BASE_URL=tmdb.url,
        CINEPULSE_TMDB__TOKEN=tmdb.token,
        CINEPULSE_TMDB__RATE_PER_S="200",
    ).returncode
    if rc != 0:
        raise StackError(f"the TMDB fetcher failed (exit {rc}); see its output above")
    report.movies_loaded = True
    report.timings["movies"] = time.monotonic() - t0

    step(f"replaying events through the gateway at {opts.rate:,.0f}/s ({source})")
    report.source = source
    report.user = sample_user(events)
    from cinepulse_common import topics
    from cinepulse_common.kafka import end_offsets, group_lag
    from cinepulse_common.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap_servers=stack.kafka.bootstrap)
    window_start = datetime.now(UTC) - timedelta(seconds=1)
    report.sent = sent = send_events(
        stack.gateway.url, stack.gateway.demo_key(), events, rate_per_s=opts.rate
    )
    written = end_offsets(kafka, topics.USER_EVENT_TOPICS)
    window_end = datetime.now(UTC) + timedelta(seconds=1)
    report.timings["send"] = sent.seconds
    acked_file = stack.cfg.root / "demo" / "acknowledged.txt"
    acked_file.parent.mkdir(parents=True, exist_ok=True)
    acked_file.write_text("\n".join(sent.accepted_ids) + "\n")
    for event_id, reason in sent.rejections:
        print(f"  rejected {event_id}: {reason}", file=sys.stderr)

    step("waiting for the archiver (MongoDB) and Spark (PostgreSQL facts)")
    t0 = time.monotonic()
    total = sum(written.values())
    left, _ = wait_for(
        # the archiver's consumer group (its faust app id, ArchiverSettings.app_id)
        lambda: total - group_lag(kafka, "cinepulse-archiver", written),
        total,
        opts.land_timeout_s,
    )
    print(
        f"  archiver: every record committed in {time.monotonic() - t0:.0f}s"
        if left >= total
        else f"  archiver: {total - left:,} records not committed after {opts.land_timeout_s:.0f}s",
        file=sys.stderr,
    )
    t0 = time.monotonic()
    dsn = stack.postgres.admin_dsn()
    last = [-1]

    def landed() -> int:
        n = count_landed(dsn, sent.accepted_ids)
        if n != last[0]:
            print(f"  facts or quarantine: {n:,}/{sent.accepted:,}", file=sys.stderr)
            last[0] = n
        return n

    report.landed, _ = wait_for(landed, sent.accepted, opts.land_timeout_s)
    report.timings["land"] = time.monotonic() - t0

    step("daily aggregates (Spark batch job)")
    t0 = time.monotonic()
    rc = run_job(stack, "cinepulse_spark_jobs", "aggregate").returncode
    if rc != 0:
        raise StackError(f"the aggregate job failed (exit {rc}); see its output above")
    report.timings["aggregate"] = time.monotonic() - t0

    step(
        "training the recommender (every candidate on one time split; the best on validation served)"
    )
    t0 = time.monotonic()
    out = run_job(stack, "cinepulse_recommender", "train")
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    report.training = (
        json.loads(lines[-1]) if lines else {"status": "failed", "reason": "no output"}
    )
    report.timings["train"] = time.monotonic() - t0
    version = str(report.training.get("version") or "")
    published = report.training.get("status") == "published" and version
    if published and not wait_model_served(stack, version, sample_user(events)):
        print(f"  the recommender has not loaded model {version} yet", file=sys.stderr)

    step("reconciliation of the replay's window (Kafka, MongoDB, PostgreSQL)")
    out = run_job(
        stack,
        "cinepulse_quality",
        "reconcile",
        "--from",
        window_start.isoformat(),
        "--to",
        window_end.isoformat(),
        "--acknowledged",
        str(acked_file),
        "--max-examples",
        "3",
        CINEPULSE_GRACE_S="0",
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    report.reconcile = json.loads(lines[-1]) if lines else {}
    report.reconcile["exit"] = out.returncode

    step("Prometheus targets")
    report.targets = wait_targets_up(stack)
    report.timings["total"] = time.monotonic() - t_all
    print_report(stack, report)
    ok = (
        report.lost == 0
        and report.reconcile.get("exit") == 0
        and all(h == "up" for _, h, _ in report.targets)
    )
    return 0 if ok else 1


def _table(rows: list[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in rows)
    rule = "-" * (width + 12)
    body = "\n".join(
        f"{k:<{width}}  {v:>10,}" if isinstance(v, int) else f"{k:<{width}}  {v!s:>10}"
        for k, v in rows
    )
    return f"{rule}\n{body}\n{rule}"


def sample_user(events: list[dict[str, Any]]) -> str:
    """The user with the most events (the sample calls' user)."""
    from collections import Counter

    counts = Counter(e["user_id"] for e in events)
    return counts.most_common(1)[0][0] if counts else "demo-user-1"


def print_report(stack: Stack, r: DemoReport) -> None:
    api, rec = stack.api.url, stack.recommender.url
    # the api and the recommender share the key set: demo is internal in both
    key = stack.api.demo_key()
    user = r.user
    hdr = f"-H 'X-API-Key: {key}'"
    print(
        f"""
Where to look
  API docs            {api}/docs
    curl -s '{api}/api/top_movies?window=week&limit=5'
    curl -s {hdr} '{api}/api/user_stats/{user}'
    curl -s '{api}/api/emotion_trends?bucket=week'
  Recommender         {rec}/docs
    curl -s {hdr} '{rec}/api/recommendations?user_id={user}&k=5'
  Explorer            {stack.explorer.url}
  Event gateway       {stack.gateway.url}/docs   (write key: {stack.cfg.root}/secrets/write-keys/demo)
  Live counters       {stack.archiver.url}/counters/trending
  Prometheus          {stack.prometheus.url}/targets
  Stop everything     make down
"""
    )
    print("Prometheus targets")
    for name, health, err in r.targets:
        print(f"  {name:<16} {health}{'  ' + err if err else ''}")
    print_summary(r)
    print(f'env for your shell: eval "$({shlex.join(["make", "-s", "env"])})"')


def model_rows(t: dict[str, Any]) -> list[tuple[str, object]]:
    """The training run's summary as table rows: what is served and why, every candidate's
    NDCG/recall/precision on the held-out pairs, and the served model over tuned ALS (with
    its paired bootstrap 95% interval) and over popularity."""
    k = next((key.split("@")[1] for key in t if key.startswith("ndcg@")), "10")
    rows: list[tuple[str, object]] = [
        ("model version", str(t.get("version"))),
        ("status", str(t.get("status"))),
        ("served", str(t.get("served", "lightfm"))),
    ]
    if t.get("why"):
        rows.append(("why", str(t["why"])))
    for name, c in (t.get("candidates") or {}).items():
        rows.append(
            (
                f"  {name}",
                f"NDCG@{k} {c[f'ndcg@{k}']:.4f}  recall {c[f'recall@{k}']:.4f}  "
                f"precision {c[f'precision@{k}']:.4f}",
            )
        )
    ratios = t.get("ratios") or {}
    vs_als, ci = ratios.get(f"ndcg@{k}_vs_als"), ratios.get(f"ndcg@{k}_vs_als_ci95")
    if vs_als is not None:
        interval = f" (95% {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
        rows.append((f"served / ALS, NDCG@{k}", f"{vs_als:.3f}x{interval}"))
    vs_pop = ratios.get(f"ndcg@{k}_vs_popularity")
    if vs_pop is not None:
        rows.append((f"served / popularity, NDCG@{k}", f"{vs_pop:.2f}x"))
    if not t.get("candidates"):  # an older trainer's summary: the three figures it had
        rows += [
            (f"NDCG@{k} served", f"{t[f'ndcg@{k}']:.4f}"),
            (f"NDCG@{k} ALS (baseline)", f"{t[f'als_ndcg@{k}']:.4f}"),
            (f"NDCG@{k} popularity (baseline)", f"{t[f'popularity_ndcg@{k}']:.4f}"),
        ]
    rows.append(("training seconds", f"{t.get('seconds')}"))
    return rows


def print_summary(r: DemoReport) -> None:
    """The event counts, the reconciliation's verdict, the model and the timings (the demo
    on local processes and the demo on a cluster)."""
    counts = r.reconcile.get("counts", {})
    diffs = r.reconcile.get("differences", {})
    rows: list[tuple[str, object]] = [
        ("events sent", r.sent.sent),
        ("acknowledged by the gateway", r.sent.accepted),
        ("rejected as invalid (422)", r.sent.rejected),
        ("not acknowledged after retries", r.sent.unavailable),
        ("in Kafka (records of the window)", int(counts.get("kafka_records", 0))),
        ("in MongoDB (records of the window)", r.archived),
        ("in PostgreSQL facts (window)", int(counts.get("facts", 0))),
        ("quarantined (window)", int(counts.get("quarantined", 0))),
        ("duplicates dropped (window)", int(diffs.get("deduplicated", 0))),
        ("acknowledged but lost", r.lost),
    ]
    print(f"\nSummary ({r.source})")
    print(_table(rows))
    verdict = "every record accounted for" if r.reconcile.get("exit") == 0 else "DRIFT"
    print(f"reconciliation: {verdict} (exit {r.reconcile.get('exit')})")
    t = r.training
    if t.get("status") in ("published", "rejected"):
        print("\nRecommender model")
        print(_table(model_rows(t)))
    else:
        print(f"\nRecommender: training {t.get('status')}: {t.get('reason')}")
    timings = ", ".join(f"{k} {v:.0f}s" for k, v in r.timings.items())
    print(f"\ntimings: {timings}")
