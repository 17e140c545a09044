"""The chart's ``helm test`` script (charts/cinepulse/files/helm-test.py) against the real
local stack, as the test pod runs it: the stack's gateway and api checked with their keys,
one event through a gateway of its own into topics of a test-only prefix, read back, and
those topics deleted (issue 20: "helm test posts a real event into production topics").

Proved here: it passes; the production topics (no prefix) get no record from it; no
``helm-test-`` topic of its own is left, nor an earlier run's stale leftover, while a run
going on beside it keeps its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from cinepulse_common import topics
from cinepulse_common.kafka import delete_topics, end_offsets, ensure_topics, make_admin
from cinepulse_common.settings import KafkaSettings
from cinepulse_devstack import Stack, chart
from cinepulse_migrations.cli import upgrade
from tests.integration.services import free_port

SCRIPT = chart.chart_dir() / "files" / "helm-test.py"
SERVICES = ["event-gateway", "api"]


@pytest.fixture(scope="module")
def live(stack: Stack) -> Iterator[Stack]:
    upgrade(stack.postgres.admin_dsn(), "head")
    with stack.running(SERVICES):
        yield stack


def test_helm_test_writes_only_its_own_topics_and_deletes_them(live: Stack) -> None:
    kafka = KafkaSettings(bootstrap_servers=live.kafka.bootstrap)
    admin = make_admin(kafka)
    production = [kafka.topic(t) for t in topics.ALL_TOPICS]
    ensure_topics(admin, production)
    # a run that died before its cleanup left a topic behind
    stale = f"helm-test-{int(time.time()) - 7200}-dead0run-user_rating_log"
    ensure_topics(admin, [stale], partitions=1)
    # and another run going on beside this one (started a minute ago): its topic stays
    running = f"helm-test-{int(time.time()) - 60}-running-user_rating_log"
    ensure_topics(admin, [running], partitions=1)
    before = end_offsets(kafka, production)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEPULSE_")} | {
        "CINEPULSE_ENVIRONMENT": "production",
        "CINEPULSE_LOG_JSON": "true",
        "CINEPULSE_KAFKA__BOOTSTRAP_SERVERS": live.kafka.bootstrap,
        "GATEWAY_URL": live.gateway.url,
        "API_URL": live.api.url,
        "WRITE_KEYS_DIR": str(live.gateway.keys_dir),
        "API_KEYS_DIR": str(live.api.keys_dir),
        "LOCAL_GATEWAY_PORT": str(free_port()),
        "DEADLINE_S": "60",
    }
    run = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "gateway without a key 401" in run.stdout
    assert "gateway, an empty event 422" in run.stdout
    assert "api, a user nobody is 404" in run.stdout
    assert "its own gateway, one event 202" in run.stdout
    assert "read back from helm-test-" in run.stdout
    # nothing reached a production topic (the lock keeps other writers off the stack)
    assert end_offsets(kafka, production) == before
    left = [t for t in admin.list_topics(timeout=10).topics if t.startswith("helm-test-")]
    assert left == [running]
    delete_topics(admin, [running])
