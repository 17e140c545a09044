"""In CI a skipped test fails the session, unless :data:`ALLOWED_IN_CI` lets it skip.

A skip hides a hole: CI (``.ci/run``) installs everything ``make setup`` installs and has the
data sets, so every test it runs can run there. When ``$CI`` (or ``$CINEPULSE_STRICT_SKIPS``, set by
``make test``) is on (``1``, ``true`` or ``yes``), a session that skipped a
test (or a whole module) not matched by :data:`ALLOWED_IN_CI` exits non-zero, and the summary
names each such test with its reason. Without ``$CI`` skips are reported (``-ra``) and nothing
more. tests/conftest.py installs the guard for every ``pytest tests/<dir>`` run; the Airflow
tests (their own environment) have the same rule in airflow/tests/conftest.py, with nothing
allowed to skip. Expected failures (``xfail``) are not skips and are not counted."""

from __future__ import annotations

import os
import re
from typing import NamedTuple

import pytest


class AllowedSkip(NamedTuple):
    """Tests under ``where`` (a node id prefix) may skip in CI with a reason matching
    ``reason`` (a regular expression, searched); ``why`` says why CI cannot run them."""

    where: str
    reason: str
    why: str


#: the one list of skips CI accepts; everything else that skips under $CI fails the session
ALLOWED_IN_CI: tuple[AllowedSkip, ...] = (
    AllowedSkip(
        "tests/images/",
        r"podman is not installed|is not built \(make image",
        "the image tests run by `make test-images` after `make images-all`, not in `make test`;"
        " a missing image or podman skips them (CINEPULSE_IMAGES_REQUIRED=1 makes a missing"
        " image a failure)",
    ),
)


#: the values of ``$CI`` that mean "in CI" (case-insensitive); anything else (``false``,
#: ``0``, empty, unset) does not
CI_ON = frozenset({"1", "true", "yes"})


#: ``make test`` sets this too: a skip there fails the run as in CI (the Makefile's
#: ``test`` target); ``make test-unit`` and a bare ``pytest`` leave it off, so a developer
#: without a data set sees the skips with their fetch commands and goes on
STRICT_ENV = "CINEPULSE_STRICT_SKIPS"


def in_ci() -> bool:
    """Skips fail the session: ``$CI`` or ``$CINEPULSE_STRICT_SKIPS`` is on."""
    return any(os.environ.get(v, "").strip().lower() in CI_ON for v in ("CI", STRICT_ENV))


def skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    """The reason a skipped report gives (``Skipped: `` dropped)."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def allowed(nodeid: str, reason: str, allow: tuple[AllowedSkip, ...] = ALLOWED_IN_CI) -> bool:
    return any(nodeid.startswith(a.where) and re.search(a.reason, reason) for a in allow)


class SkipGuard:
    """Collects the skips of one session; in CI, fails it when one is not allowed."""

    def __init__(self, allow: tuple[AllowedSkip, ...] = ALLOWED_IN_CI) -> None:
        self.allow = allow
        self.skipped: list[tuple[str, str]] = []  # (node id, reason)

    def _record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append((report.nodeid, skip_reason(report)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)  # a module skipped whole

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def forbidden(self) -> list[tuple[str, str]]:
        if not in_ci():
            return []
        return [(n, r) for n, r in self.skipped if not allowed(n, r, self.allow)]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        ok = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
        if self.forbidden() and session.exitstatus in ok:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        forbidden = self.forbidden()
        if not forbidden:
            return
        terminalreporter.section("skipped in CI (not allowed)", sep="=", red=True, bold=True)
        for nodeid, reason in forbidden:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}", red=True)
        terminalreporter.line(
            f"{len(forbidden)} skipped under $CI: CI must run every test; install what is"
            " missing, or list the skip with its reason in tests/skip_guard.py ALLOWED_IN_CI"
        )


def install(config: pytest.Config) -> None:
    """For tests/conftest.py's ``pytest_configure``: one guard per session."""
    if not config.pluginmanager.has_plugin("cinepulse-skip-guard"):
        config.pluginmanager.register(SkipGuard(), "cinepulse-skip-guard")
