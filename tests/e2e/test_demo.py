"""`make demo`, the README's main job, end to end on a private stack of its own (its own
folder and free ports, so it never touches a developer's stack): MovieLens users replayed
through the gateway, Spark, training, reconciliation, every Prometheus target up. Then the
sample calls it prints answer. About 3 minutes."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cinepulse_devstack.config import StackSettings
from tests.datasets import needs

pytestmark = needs("movielens-small")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def stack_env() -> Iterator[dict[str, str]]:
    fields = [f for f in StackSettings.model_fields if f.endswith("_port")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEPULSE_")}
    root = Path(tempfile.mkdtemp(prefix="cinepulse-demo-"))
    root.chmod(0o755)  # PostgreSQL runs as 'postgres' when the tests run as root
    env["CINEPULSE_STACK_ROOT"] = str(root)
    env |= {
        f"CINEPULSE_STACK_{f.upper()}": str(p)
        for f, p in zip(fields, free_ports(len(fields)), strict=True)
    }
    yield env
    subprocess.run([sys.executable, "-m", "cinepulse_devstack", "down"], env=env, check=False)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def demo(stack_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cinepulse_devstack", "demo", "--users", "40", "--rate", "800"],
        env=stack_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )


def figure(out: str, label: str) -> int:
    m = re.search(rf"^{re.escape(label)}\s+([\d,]+)$", out, re.MULTILINE)
    assert m, f"no {label!r} line in the summary:\n{out}"
    return int(m.group(1).replace(",", ""))


@pytest.mark.timeout(1500)
def test_the_demo_runs_end_to_end(demo: subprocess.CompletedProcess[str]) -> None:
    out = demo.stdout
    assert demo.returncode == 0, f"exit {demo.returncode}\n{out}\n{demo.stderr[-4000:]}"
    sent = figure(out, "events sent")
    acked = figure(out, "acknowledged by the gateway")
    assert sent > 2000 and acked == sent  # valid MovieLens events: all acknowledged
    assert figure(out, "in Kafka (records of the window)") == acked
    assert figure(out, "in MongoDB (records of the window)") == acked
    facts = figure(out, "in PostgreSQL facts (window)")
    quarantined = figure(out, "quarantined (window)")
    assert facts + quarantined == acked
    assert figure(out, "acknowledged but lost") == 0
    assert "reconciliation: every record accounted for (exit 0)" in out
    assert re.search(r"^status\s+published$", out, re.MULTILINE), out
    targets = re.search(r"Prometheus targets\n((?:  .*\n)+)", out)
    assert targets, out
    lines = targets.group(1).splitlines()
    names = {ln.split()[0] for ln in lines}
    assert {"event-gateway", "archiver", "spark-stream", "api", "recommender"} <= names
    assert all(ln.split()[1] == "up" for ln in lines), targets.group(1)


@pytest.mark.timeout(1500)
def test_the_printed_sample_calls_answer(
    demo: subprocess.CompletedProcess[str], stack_env: dict[str, str]
) -> None:
    assert demo.returncode == 0
    calls = re.findall(r"curl -s (?:-H '([^']+)' )?'([^']+)'", demo.stdout)
    assert len(calls) >= 4, demo.stdout
    for header, url in calls:
        headers = dict([header.split(": ", 1)]) if header else {}
        r = httpx.get(url, headers=headers, timeout=10)
        assert r.status_code == 200, f"{url}: {r.status_code} {r.text[:300]}"
        body = r.json()
        assert body.get("items") or body.get("buckets") or body.get("total_events"), (url, body)
    explorer = re.search(r"Explorer\s+(\S+)", demo.stdout)
    assert explorer
    assert httpx.get(explorer.group(1) + "/_stcore/health", timeout=10).text == "ok"
    root = Path(stack_env["CINEPULSE_STACK_ROOT"])
    acked = (root / "demo" / "acknowledged.txt").read_text().split()
    assert len(acked) == figure(demo.stdout, "acknowledged by the gateway")
