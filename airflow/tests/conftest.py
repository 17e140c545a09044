"""Test fixtures of the Airflow DAGs.

Airflow is configured here, before anything imports it: an AIRFLOW_HOME of this session's
own (a temporary directory, removed at the end) with a SQLite metadata database, the DAGs
folder of this repository, no examples, and no ``cinepulse_config`` from the environment
nor its endpoint variables (the tests assert the documented defaults unless they override
them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

AIRFLOW_DIR = Path(__file__).resolve().parents[1]
REPO = AIRFLOW_DIR.parent
DAGS = AIRFLOW_DIR / "dags"
WORKSPACE_BIN = REPO / ".venv" / "bin"

_HOME = Path(tempfile.mkdtemp(prefix="cinepulse-airflow-home-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
)
for _name in list(os.environ):
    if _name.startswith(("AIRFLOW_VAR_", "AIRFLOW_CONN_", "CINEPULSE_AIRFLOW_")):
        del os.environ[_name]
sys.path.insert(0, str(DAGS))
sys.path.insert(0, str(Path(__file__).parent))


# -- in CI a skip fails the session (the rule of tests/skip_guard.py; here nothing may skip:
#    make setup provides everything these tests need) --------------------------------------
_SKIPPED: list[tuple[str, str]] = []  # (node id, reason)


def _in_ci() -> bool:
    """``$CI`` or ``$CINEPULSE_STRICT_SKIPS`` (``make test``) is on: ``1``, ``true`` or
    ``yes`` (any case), as tests/skip_guard.py in_ci."""
    return any(
        os.environ.get(v, "").strip().lower() in {"1", "true", "yes"}
        for v in ("CI", "CINEPULSE_STRICT_SKIPS")
    )


def _record_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        why = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED.append((report.nodeid, why.removeprefix("Skipped: ")))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record_skip(report)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record_skip(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)
    ok = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    if _in_ci() and _SKIPPED and session.exitstatus in ok:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _in_ci() and _SKIPPED:
        terminalreporter.section("skipped in CI (not allowed)", sep="=", red=True, bold=True)
        for nodeid, reason in _SKIPPED:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}", red=True)
        terminalreporter.line(f"{len(_SKIPPED)} skipped under $CI: CI must run every test")


@pytest.fixture(scope="session")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The session's SQLite metadata database, migrated (dag.test() needs one)."""
    from airflow.utils.db import initdb

    initdb()


def workspace_bin(name: str) -> Path:
    """A console script of the workspace's environment (``make setup`` installs it)."""
    path = WORKSPACE_BIN / name
    if not path.exists():
        pytest.skip(f"{path} is missing: run `make setup` (the workspace environment)")
    return path


def stack_helper(*args: str) -> str:
    """``stack_helper.py`` with the workspace's Python (see its docstring)."""
    python = workspace_bin("python")
    done = subprocess.run(
        [str(python), str(Path(__file__).parent / "stack_helper.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"stack_helper {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


@pytest.fixture(scope="session")
def local_stack() -> Iterator[None]:
    """The local stack's PostgreSQL, Kafka and MongoDB: reused when up, else started for this
    session and stopped at its end (CINEPULSE_KEEP_STACK=1 keeps them), as tests/integration."""
    started = json.loads(stack_helper("up"))
    yield
    if started and not os.environ.get("CINEPULSE_KEEP_STACK"):
        stack_helper("down", *started)


@pytest.fixture
def stack_resources(local_stack: None, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A migrated PostgreSQL database, a MongoDB database and a Kafka topic prefix of this
    test's own on the local stack; dropped afterwards."""
    res = json.loads(stack_helper("provision"))
    res["file"] = str(tmp_path / "resources.json")
    Path(res["file"]).write_text(json.dumps(res))
    yield res
    stack_helper("teardown", res["file"])


@dataclass
class LivePrometheus:
    """The local stack's real Prometheus, scraping a heartbeat exporter of this test's own:
    ``set_heartbeat`` changes the exported Spark heartbeat (unix time; None: no series) and
    waits until Prometheus has scraped it, so the guard's query sees it."""

    url: str
    target: str
    value: float | None = None

    def metrics(self) -> bytes:
        if self.value is None:
            return b""
        line = f'cinepulse_spark_last_progress_timestamp_seconds{{query="events"}} {self.value!r}\n'
        return line.encode()

    def query(self, promql: str) -> list[Any]:
        import httpx

        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        result: list[Any] = answer.json()["data"]["result"]
        return result

    def set_heartbeat(self, value: float | None, timeout_s: float = 60.0) -> None:
        """Export ``value`` and wait until Prometheus scraped this target with it (series of
        other targets, e.g. left from earlier runs within the look-back, are not waited on)."""
        self.value = value
        mine = f'{{service="{self.target}"}}'
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            up = self.query(f"up{mine}")
            series = self.query(f"cinepulse_spark_last_progress_timestamp_seconds{mine}")
            seen = float(series[0]["value"][1]) if series else None
            if up and up[0]["value"][1] == "1" and seen == value:
                return
            time.sleep(0.5)
        raise TimeoutError(f"Prometheus did not scrape the heartbeat {value} within {timeout_s}s")


@pytest.fixture
def prometheus(local_stack: None) -> Iterator[LivePrometheus]:
    live = LivePrometheus(url=stack_helper("prometheus-url").strip(), target="")

    class Exporter(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = live.metrics()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    name = live.target = f"airflow-test-heartbeat-{server.server_port}"
    stack_helper("register-target", name, str(server.server_port))
    try:
        live.set_heartbeat(None)  # scraped, and no series yet
        yield live
    finally:
        stack_helper("unregister-target", name)
        server.shutdown()


@dataclass
class LiveAlertmanager:
    """A real Alertmanager (Debian's ``prometheus-alertmanager``) on loopback, of this test
    session's own: a minimal configuration (every alert to a receiver that notifies no one),
    no clustering, its state in a temporary directory."""

    url: str

    def alerts(self, **matchers: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` filtered by label equality matchers."""
        import httpx

        params = {"filter": [f'{k}="{v}"' for k, v in matchers.items()]}
        answer = httpx.get(f"{self.url}/api/v2/alerts", params=params, timeout=10)
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found


ALERTMANAGER_CONFIG = """\
route:
  receiver: "null"
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: "null"
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAlertmanager]:
    import httpx

    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.fail("no Alertmanager: apt-get install prometheus-alertmanager (make setup)")
    home = tmp_path_factory.mktemp("alertmanager")
    (home / "alertmanager.yml").write_text(ALERTMANAGER_CONFIG)
    port = _free_port()
    log = (home / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={home / 'alertmanager.yml'}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip port: a single instance
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"Alertmanager exited ({proc.returncode}):\n"
                    + (home / "alertmanager.log").read_text()[-3000:]
                )
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Alertmanager on {url} not ready within 30s")
            time.sleep(0.2)
        yield LiveAlertmanager(url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
