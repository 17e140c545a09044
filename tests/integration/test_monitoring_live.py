"""Every PromQL expression of the chart (the PrometheusRule's alerts, every dashboard panel)
against the real local Prometheus scraping the real services (issue 9).

The services run through the stack (event gateway, archiver, Spark streaming, api,
recommender), registered with the target labels the chart's ServiceMonitors and PodMonitor
give them in the cluster, so the expressions run unchanged. Real traffic goes through them
(events, a few invalid; API and recommender calls, some 4xx), and the batch jobs the
expressions need run for real and push to the real Pushgateway: the reconciliation
(``cinepulse_quality_*``) over this test's window and the pandas fallback
(``cinepulse_fallback_*``) over the same window into a database of this test's own.

Then each expression must parse and return series; an alert's condition that is false
while healthy is checked operand by operand (:mod:`cinepulse_devstack.promql`). The rules
are also loaded into Prometheus, and every one must be evaluated without error.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import yaml
from pydantic import SecretStr

from cinepulse_common.settings import MongoSettings
from cinepulse_devstack import Stack, chart
from cinepulse_devstack.demo import count_landed, run_job
from cinepulse_devstack.demo_events import send_events, synthetic_events, wait_archived
from cinepulse_devstack.promql import ExpressionCheck, Prometheus, check_expression
from cinepulse_migrations.cli import upgrade

try:
    chart.tool("helm")
except chart.ChartToolMissing as exc:  # make setup builds it
    pytest.skip(str(exc), allow_module_level=True)

SERVICES = ["event-gateway", "archiver", "spark-stream", "api", "recommender", "explorer"]
RULES_FILE = "cinepulse-chart.yml"
#: how long the expressions may take to return series once the traffic and jobs are done
#: (a rate needs two scrapes; the lag alerts' deriv(...[10m:1m]) two minute boundaries)
SETTLE_S = 150.0
Kind = Literal["alert", "record", "panel"]


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    r = chart.render([chart.chart_dir() / "ci" / "default-values.yaml"])
    assert r.returncode == 0, r.stderr
    return chart.documents(r.stdout)


@pytest.fixture(scope="module")
def live(stack: Stack) -> Iterator[Stack]:
    """The services, started if they are not running (and then stopped at the end, unless
    CINEPULSE_KEEP_STACK is set); running ones are reused (their targets re-registered)."""
    upgrade(stack.postgres.admin_dsn(), "head")
    with stack.running(SERVICES):
        yield stack


@pytest.fixture(scope="module")
def prometheus(live: Stack) -> Iterator[Prometheus]:
    prom = Prometheus(live.prometheus.url)
    yield prom
    prom.close()


@pytest.fixture(scope="module")
def chart_rules(
    live: Stack, prometheus: Prometheus, docs: list[dict[str, Any]]
) -> Iterator[list[dict[str, Any]]]:
    """The PrometheusRule's groups in the local Prometheus' rules folder (removed after)."""
    groups = chart.prometheus_rule_groups(docs)
    path = live.prometheus.rules_dir / RULES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    prometheus.reload()
    try:
        yield groups
    finally:
        path.unlink(missing_ok=True)
        prometheus.reload()


def _pushed_groups(stack: Stack) -> list[dict[str, str]]:
    r = httpx.get(f"{stack.pushgateway.url}/api/v1/metrics", timeout=5)
    r.raise_for_status()
    return [g["labels"] for g in r.json()["data"]]


@pytest.fixture(scope="module")
def pushgateway_cleanup(live: Stack) -> Iterator[None]:
    """Groups this test pushes that were not there before are deleted afterwards."""
    before = _pushed_groups(live)
    yield
    for labels in _pushed_groups(live):
        if labels in before:
            continue
        key = [("job", labels["job"]), *sorted((k, v) for k, v in labels.items() if k != "job")]
        path = "/".join(f"{k}/{v}" for k, v in key)
        httpx.delete(f"{live.pushgateway.url}/metrics/{path}", timeout=5).raise_for_status()


def _wait(what: str, probe: Any, timeout_s: float, every_s: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f}s (last: {value!r})")
        time.sleep(every_s)


def _drive_traffic(stack: Stack) -> list[str]:
    """Events through the gateway (some invalid, one without a key), calls to the api and
    the recommender (some 4xx). Returns the acknowledged event ids."""
    events = synthetic_events(40, seed=uuid.uuid4().int)
    sent = send_events(stack.gateway.url, stack.gateway.demo_key(), events, progress=False)
    assert sent.accepted == len(events), sent
    key = {"X-Write-Key": stack.gateway.demo_key()}
    invalid = [
        events[0] | {"event_id": str(uuid.uuid4()), "event_type": "rate", "payload": {"rating": 7}},
        events[0] | {"event_id": str(uuid.uuid4()), "movie_id": -1},
        events[0] | {"event_id": str(uuid.uuid4()), "event_type": "hover"},
    ]
    with httpx.Client(base_url=stack.gateway.url, timeout=10) as gw:
        for event in invalid:
            assert gw.post("/api/events", json=event, headers=key).status_code == 422
        assert gw.post("/api/events", json=events[1]).status_code == 401
    user = events[0]["user_id"]
    with httpx.Client(base_url=stack.api.url, timeout=10) as api:
        api_key = {"X-API-Key": stack.api.demo_key()}
        assert api.get("/api/top_movies", params={"window": "week"}).status_code == 200
        assert api.get(f"/api/user_stats/{user}", headers=api_key).status_code in (200, 404)
        assert api.get(f"/api/user_stats/{user}").status_code == 401
        assert api.get("/api/top_movies", params={"window": "decade"}).status_code == 422
        assert api.get("/api/movies/999999").status_code == 404
    # the recommender takes the api's keys and roles: demo is internal there too
    rec_key = {"X-API-Key": stack.recommender.demo_key()}
    with httpx.Client(base_url=stack.recommender.url, headers=rec_key, timeout=10) as rec:
        for _ in range(3):
            r = rec.get("/api/recommendations", params={"user_id": user, "k": 5})
            assert r.status_code == 200, r.text
        r = rec.get("/api/recommendations", params={"user_id": user, "k": 0})
        assert r.status_code == 422
        unkeyed = httpx.get(
            f"{stack.recommender.url}/api/recommendations", params={"user_id": user}
        )
        assert unkeyed.status_code == 401
        assert rec.get("/api/movies/999999/similar").status_code == 404
    return sent.accepted_ids


def _run_batch_jobs(
    stack: Stack, accepted: list[str], start: datetime, tmp: Path, template: str
) -> None:
    """The reconciliation and the pandas fallback over this test's window, for real."""
    mongo = MongoSettings(url=SecretStr(stack.mongo.url))
    archived, _ = wait_archived(mongo, accepted, timeout_s=90)
    assert archived == len(accepted), f"{archived}/{len(accepted)} archived"
    dsn = stack.postgres.admin_dsn()
    _wait("Spark modelled the events", lambda: count_landed(dsn, accepted) >= len(accepted), 120)
    end = datetime.now(UTC) + timedelta(seconds=1)
    acked = tmp / "acknowledged.txt"
    acked.write_text("\n".join(accepted) + "\n")
    window = ["--from", start.isoformat(), "--to", end.isoformat()]
    out = run_job(
        stack,
        "cinepulse_quality",
        "reconcile",
        *window,
        "--acknowledged",
        str(acked),
        CINEPULSE_GRACE_S="0",
    )
    # 1 (drift) still pushes its metrics; another worker's traffic in the window may not
    # have landed yet. 2 and 4 are failures of the job.
    assert out.returncode in (0, 1), out.stdout
    name = f"t_{uuid.uuid4().hex[:10]}"
    own_db = stack.postgres.create_database(name, template=template)
    try:
        out = run_job(
            stack,
            "cinepulse_pandas_fallback",
            "run",
            *window,
            "--by",
            "test_monitoring_live",
            CINEPULSE_POSTGRES__DSN=own_db,
        )
        assert out.returncode == 0, out.stdout
        assert json.loads(out.stdout.strip().splitlines()[-1])["events_read"] >= len(accepted)
    finally:
        stack.postgres.drop_database(name)


def _expressions(
    docs: list[dict[str, Any]], scrape_interval_s: float
) -> list[tuple[str, Kind, str]]:
    items: list[tuple[str, Kind, str]] = []
    for group in chart.prometheus_rule_groups(docs):
        for rule in group["rules"]:
            kind: Kind = "alert" if "alert" in rule else "record"
            name = rule.get("alert") or rule.get("record")
            items.append((f"{group['name']}/{name}", kind, rule["expr"]))
    seen: dict[str, int] = {}
    for title, expr in chart.dashboard_queries(docs, scrape_interval_s=scrape_interval_s):
        seen[title] = seen.get(title, 0) + 1
        items.append((f"panel {title!r} #{seen[title]}", "panel", expr))
    return items


def _report(checks: list[ExpressionCheck]) -> str:
    return "\n".join(c.line() for c in checks)


def test_every_chart_expression_returns_series_from_the_live_stack(
    live: Stack,
    prometheus: Prometheus,
    docs: list[dict[str, Any]],
    chart_rules: list[dict[str, Any]],
    pushgateway_cleanup: None,
    migrated_template: str,
    tmp_path: Path,
) -> None:
    t0 = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = time.monotonic() - t0 - sum(phases.values())

    # 1. every monitor of the chart has a live target here, with the cluster's labels
    monitors = chart.monitor_labels(docs)
    assert monitors, "the chart declares no ServiceMonitor or PodMonitor"

    def targets_up() -> list[str]:
        down = []
        for name, labels in monitors.items():
            selector = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            series = prometheus.query(f"up{{{selector}}} == 1")
            if not series:
                down.append(f"{name}: no target up{{{selector}}}")
        return down

    deadline = time.monotonic() + 60
    while (down := targets_up()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not down, "\n".join(down)
    phase("targets up")

    # 2. traffic and batch jobs
    start = datetime.now(UTC) - timedelta(seconds=1)
    accepted = _drive_traffic(live)
    phase("traffic")
    _run_batch_jobs(live, accepted, start, tmp_path, migrated_template)
    phase("landed, reconciled, fallback")

    # 3. every expression parses and returns series (alerts: see promql.check_expression)
    scrape_s = float(live.cfg.prometheus_scrape_interval.rstrip("s"))
    items = _expressions(docs, scrape_s)
    deadline = time.monotonic() + SETTLE_S
    while True:
        checks = [check_expression(prometheus, *item) for item in items]
        failed = [c for c in checks if not c.ok]
        if not failed or time.monotonic() > deadline:
            break
        time.sleep(scrape_s)
    phase("expressions")
    timings = ", ".join(f"{k} {v:.0f}s" for k, v in phases.items())
    print(f"\n{_report(checks)}\n{timings}")
    assert not failed, "expressions without series:\n" + _report(failed)

    # 4. the rules as Prometheus loaded them: all there, evaluated, no error
    names = {r.get("alert") or r.get("record") for g in chart_rules for r in g["rules"]}

    def evaluated() -> list[dict[str, Any]]:
        mine = [r for r in prometheus.rules() if r["name"] in names]
        done = [r for r in mine if not r.get("lastEvaluation", "").startswith("0001-")]
        return mine if len(done) == len(names) else []

    loaded = _wait("Prometheus evaluated every chart rule", evaluated, 30)
    bad = [
        f"{r['name']}: {r['health']} {r.get('lastError', '')}"
        for r in loaded
        if r["health"] != "ok" or r.get("lastError")
    ]
    assert not bad, "\n".join(bad)
