"""Cinepulse services as local processes next to the stack (``cinepulse-stack up --services``).

Each runs ``python -m <package>`` from this environment with the stack's variables, answers
``/readyz`` before it counts as started, and is registered with the local Prometheus.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from cinepulse_devstack.components import Component, Prometheus
from cinepulse_devstack.config import StackSettings
from cinepulse_devstack.procs import spawn, terminate

EnvProvider = Callable[[], dict[str, str]]


class PythonService(Component):
    module: str
    health_path = "/readyz"
    #: registered with Prometheus (it serves /metrics)
    scraped = True

    def __init__(self, cfg: StackSettings, stack_env: EnvProvider, prometheus: Prometheus) -> None:
        super().__init__(cfg)
        self._stack_env = stack_env
        self._prometheus = prometheus

    @property
    def port(self) -> int:
        raise NotImplementedError

    @property
    def ports(self) -> list[int]:
        return [self.port]

    @property
    def url(self) -> str:
        return f"http://{self.cfg.host}:{self.port}"

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return version(self.distribution)

    @property
    def distribution(self) -> str:
        return "cinepulse-" + self.name

    def install(self) -> None:
        """Installed into this environment by ``uv sync`` (``make setup``)."""

    def service_env(self) -> dict[str, str]:
        return {}

    def args(self) -> list[str]:
        return []

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CINEPULSE_")}
        env |= self._stack_env() | {"CINEPULSE_ENVIRONMENT": "development"} | self.service_env()
        cmd = [sys.executable, "-m", self.module, *self.args()]
        spawn(cmd, log=self.log_path, pidfile=self.pidfile, env=env)
        if self.scraped:
            self._prometheus.register_target(self.name, self.port)

    def probe(self) -> None:
        httpx.get(self.url + self.health_path, timeout=2.0).raise_for_status()

    def stop(self) -> None:
        self._prometheus.unregister_target(self.name)
        terminate(self.pid(), timeout_s=30.0)
        self.pidfile.unlink(missing_ok=True)


class EventGateway(PythonService):
    name = "event-gateway"
    module = "cinepulse_event_gateway"

    @property
    def port(self) -> int:
        return self.cfg.gateway_port

    @property
    def keys_dir(self) -> Path:
        """A mounted-Secret-like directory: one file per client, its content the key."""
        return self.cfg.root / "secrets" / "write-keys"

    def demo_key(self) -> str:
        path = self.keys_dir / "demo"
        if not path.exists():
            self.keys_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        return path.read_text().strip()

    def service_env(self) -> dict[str, str]:
        self.demo_key()
        return {
            "CINEPULSE_PORT": str(self.port),
            "CINEPULSE_HOST": self.cfg.host,
            "CINEPULSE_AUTH__KEYS_PATH": str(self.keys_dir),
        }


class Archiver(PythonService):
    name = "archiver"
    module = "cinepulse_archiver"

    @property
    def port(self) -> int:
        return self.cfg.archiver_port

    def service_env(self) -> dict[str, str]:
        return {
            "CINEPULSE_WEB_PORT": str(self.port),
            "CINEPULSE_WEB_HOST": self.cfg.host,
            "CINEPULSE_DATA_DIR": str(self.dir / "data"),
        }


class TmdbOffline(PythonService):
    """The offline TMDB server (a demo and test tool): the fetcher's base URL in the demo."""

    name = "tmdb-offline"
    module = "cinepulse_devstack.tmdb_offline"
    health_path = "/__admin/stats"
    scraped = False
    token = "offline-read-token"  # noqa: S105 - the offline server's fixed demo credential

    @property
    def port(self) -> int:
        return self.cfg.tmdb_offline_port

    @property
    def distribution(self) -> str:
        return "cinepulse-devstack"

    def args(self) -> list[str]:
        return ["--host", self.cfg.host, "--port", str(self.port), "--token", self.token]


class SparkStream(PythonService):
    """The Spark streaming job (both queries, ``local[2]``): Kafka into the star schema. Its
    driver serves ``/metrics``; the checkpoints live in the stack's folder."""

    name = "spark-stream"
    module = "cinepulse_spark_jobs"
    health_path = "/metrics"

    @property
    def port(self) -> int:
        return self.cfg.spark_metrics_port

    @property
    def distribution(self) -> str:
        return "cinepulse-spark-jobs"

    def args(self) -> list[str]:
        return ["stream"]

    def service_env(self) -> dict[str, str]:
        return {
            "CINEPULSE_METRICS_PORT": str(self.port),
            "CINEPULSE_CHECKPOINT_DIR": str(self.dir / "checkpoints"),
        }
