"""Run Cinepulse services as real processes for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from cinepulse_common.kafka import make_consumer
from cinepulse_common.settings import KafkaSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, name: str) -> Iterator[str]:
    """``app`` (ASGI) served by uvicorn in a thread of this process on a free port, with its
    lifespan: its base URL until the block ends. For fuzzing from outside the app (schemathesis
    over HTTP), with fakes or a database the test set up in-process."""
    import uvicorn  # the integration tests' own dependency, not every importer's

    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def service_env(**values: str) -> dict[str, str]:
    """The test process's environment without any CINEPULSE_* variable, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEPULSE_")}
    env.update({"CINEPULSE_ENVIRONMENT": "test", "CINEPULSE_LOG_JSON": "true"})
    env.update(values)
    return env


class ServiceProcess:
    """``python -m <module>`` in its own process group, with its log in ``log``."""

    def __init__(
        self,
        module: str,
        env: Mapping[str, str],
        port: int,
        log: Path,
        args: list[str] | None = None,
    ) -> None:
        self.module = module
        self.module_args = list(args or [])
        self.env = dict(env)
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/healthz", timeout_s: float = 90.0) -> ServiceProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.module_args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.module} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                if httpx.get(self.url + ready_path, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.module} not ready within {timeout_s}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown hook runs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def read_topics(
    settings: KafkaSettings,
    names: list[str],
    *,
    expect: int | None = None,
    idle_s: float = 3.0,
    timeout_s: float = 60.0,
) -> list[Any]:
    """Every record of ``names`` (prefixed here) from the beginning: stops at ``expect``
    records, or after ``idle_s`` without a new one."""
    consumer = make_consumer(settings, group_id=f"test-reader-{time.monotonic_ns()}")
    consumer.subscribe([settings.topic(n) for n in names])
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                if time.monotonic() - last > idle_s and (expect is None or len(records) >= expect):
                    break
                continue
            if msg.error():
                continue
            records.append(msg)
            last = time.monotonic()
    finally:
        consumer.close()
    return records
