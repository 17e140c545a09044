"""Fault drills: a private stack of their own, and the report.

The drills kill infrastructure, so they never touch the shared stack under ``.stack/``: the
session starts a second :class:`cinepulse_devstack.Stack` rooted in a temporary folder, every
port of :class:`StackSettings` (components and services) a free one, migrates its database,
starts the event gateway, the archiver and the Spark streaming job, checks that one event
goes all the way through, and stops everything at the end, whatever happened. The folder is
deleted after a passing session and kept (its path printed) after a failing one: the logs
of every component are in it.

Each drill records one row (sent, acknowledged, stored, lost, duplicated, seconds, the
fault); the rows are printed at the end of the session and written to ``results/drills.md``.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cinepulse_common.paths import repo_root
from cinepulse_devstack import Stack, StackSettings
from tests.drills.harness import (
    REPORT,
    SERVICES,
    DrillRow,
    Sender,
    markdown_table,
    tally,
    wait_for,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "drill: a fault drill on the drills' private stack")


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports on loopback (held open together while chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


#: the private stack's folder when it is kept (a failing session): named in the summary
KEPT: list[Path] = []


def private_settings(root: Path) -> StackSettings:
    """Settings of a stack rooted in ``root`` with every port field a free port."""
    names = [n for n in StackSettings.model_fields if n.endswith("_port")]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    return StackSettings(root=root, start_timeout_s=240, **ports)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def drill_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="cinepulse-drills-"))
    root.chmod(0o755)  # PostgreSQL runs as 'postgres' when the tests run as root
    stack = Stack(private_settings(root))
    try:
        stack.up()  # every component, each answering a real request
        from cinepulse_migrations.cli import upgrade

        upgrade(stack.postgres.admin_dsn(), "head")
        stack.up(list(SERVICES))
        _warm_up(stack)
        yield stack
    finally:
        pg_dir = stack.postgres.dir.resolve()  # a link outside when running as root
        stack.down()
        failed = request.session.testsfailed or not REPORT
        if failed and not os.environ.get("CINEPULSE_DRILLS_CLEAN"):
            KEPT.append(root)
        else:
            shutil.rmtree(root, ignore_errors=True)
            if pg_dir != stack.postgres.dir:
                shutil.rmtree(pg_dir, ignore_errors=True)


def _warm_up(stack: Stack) -> None:
    """One small send must reach MongoDB and the facts: the JVM, Spark's Python workers and
    the emotion classifier are loaded before any drill measures anything."""
    sender = Sender(stack, count=40, seed=1, rate_per_s=40)
    sender.start()
    result = sender.finish()
    assert result.accepted == 40, result
    wait_for(
        "the warm-up events in MongoDB and the facts",
        lambda: tally(stack, sender.ids, result.accepted_ids).stored == 40,
        timeout_s=400,
        interval_s=1.0,
    )


@pytest.fixture
def stack(drill_stack: Stack) -> Stack:
    """The private stack (this name shadows the shared stack's fixture: a drill cannot reach
    it), every component and service running: a drill that failed half-way may have left
    one down, and it is started again here, as its supervisor would."""
    names = [*(c.name for c in drill_stack.components), *SERVICES]
    if not all(s.ok for s in drill_stack.status(names)):
        drill_stack.up(names)
    return drill_stack


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[[DrillRow], None]:
    """Add the drill's row to the report (call it before asserting: a failing drill's
    numbers are the interesting ones)."""

    def add(row: DrillRow) -> None:
        row.outcome = request.node.nodeid  # replaced by the test's outcome after the call
        REPORT.append(row)

    return add


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call":
        return
    verdict = "xfailed" if hasattr(report, "wasxfail") else report.outcome
    for row in REPORT:
        if row.outcome == item.nodeid:
            row.outcome = verdict


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not REPORT:
        return
    table = markdown_table(REPORT)
    terminalreporter.write_sep("=", "fault drills")
    for line in table.splitlines():
        terminalreporter.write_line(line)
    total = sum(r.seconds for r in REPORT)
    out = repo_root() / "results" / "drills.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# Fault drills\n\n"
        f"`pytest tests/drills` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores; {total:.0f} s in the drills themselves "
        f"(the private stack's start and warm-up not included).\n\n"
        "acknowledged = answered `accepted` by the gateway (503s are not); stored = "
        "acknowledged and both archived in MongoDB and a fact (or quarantined) in "
        "PostgreSQL; lost = acknowledged but not stored; duplicated = fact rows beyond one "
        "per event id plus raw documents beyond one per event id.\n\n" + table
    )
    terminalreporter.write_line(f"written to {out}")
    for root in KEPT:
        terminalreporter.write_line(f"the private stack's folder (every log) is kept at {root}")
