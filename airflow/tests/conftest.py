"""Test fixtures of the Airflow DAGs.

Airflow is configured here, before anything imports it: an AIRFLOW_HOME of this session's
own (a temporary directory, removed at the end) with a SQLite metadata database, the DAGs
folder of this repository, no examples, and no ``cinepulse_config`` from the environment
(the tests assert the documented defaults unless they override them).
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    if _name.startswith(("AIRFLOW_VAR_", "AIRFLOW_CONN_")):
        del os.environ[_name]
sys.path.insert(0, str(DAGS))
sys.path.insert(0, str(Path(__file__).parent))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


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


@contextmanager
def http_stub(handle: Callable[[str, str, bytes], dict[str, Any] | None]) -> Iterator[str]:
    """A local HTTP server answering every GET/POST with ``handle(method, path, body)`` as
    JSON (200); yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            data = json.dumps(handle(self.command, self.path, body) or {}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


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
