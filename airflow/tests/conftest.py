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
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

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
class FakePrometheus:
    """Prometheus' query API with one series: the Spark heartbeat (unix time; None: no series)."""

    url: str = ""
    heartbeat: float | None = None
    queries: list[str] = field(default_factory=list)

    def answer(self, method: str, path: str, body: bytes) -> dict[str, Any]:
        self.queries.append(unquote_plus(path))
        result = [] if self.heartbeat is None else [{"value": [time.time(), str(self.heartbeat)]}]
        return {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    with http_stub(fake.answer) as url:
        fake.url = url
        yield fake
