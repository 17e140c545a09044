"""Cinepulse services as local processes next to the stack (``cinepulse-stack up --services``).

Each runs ``python -m <package>`` from this environment with the stack's variables, answers
``/readyz`` before it counts as started, and is registered with the local Prometheus under
the target labels the chart's ServiceMonitor (Spark: PodMonitor) gives it in the cluster, so
the chart's alert rules and dashboards run here unchanged (:meth:`PythonService.scrape_labels`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from cinepulse_devstack.components import Component, Prometheus
from cinepulse_devstack.config import CHART_NAMESPACE, CHART_RELEASE, StackSettings
from cinepulse_devstack.procs import spawn, stack_secret, terminate

EnvProvider = Callable[[], dict[str, str]]


class PythonService(Component):
    module: str
    health_path = "/readyz"
    #: registered with Prometheus (it serves /metrics)
    scraped = True
    #: the chart's component (``<release>-cinepulse-<component>``: its Deployment, Service
    #: and ServiceMonitor, the container named after it)
    component: str = ""

    def __init__(self, cfg: StackSettings, stack_env: EnvProvider, prometheus: Prometheus) -> None:
        super().__init__(cfg)
        self._stack_env = stack_env
        self._prometheus = prometheus

    @property
    def port(self) -> int:
        raise NotImplementedError

    @property
    def metrics_port(self) -> int | None:
        """The port of its ``/metrics`` alone (``CINEPULSE_METRICS_PORT``, as the chart sets
        it), scraped instead of :attr:`port`; None: served on :attr:`port`."""
        return None

    @property
    def ports(self) -> list[int]:
        return [self.port] + ([self.metrics_port] if self.metrics_port else [])

    @property
    def url(self) -> str:
        return f"http://{self.cfg.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where its ``/metrics`` is (``metrics_url + "/metrics"``): the metrics port, else
        :attr:`url`."""
        return f"http://{self.cfg.host}:{self.metrics_port or self.port}"

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
        if self.metrics_port:
            env["CINEPULSE_METRICS_PORT"] = str(self.metrics_port)
        cmd = [sys.executable, "-m", self.module, *self.args()]
        spawn(cmd, log=self.log_path, pidfile=self.pidfile, env=env)
        self.register()

    def scrape_labels(self) -> dict[str, str]:
        """The target labels the chart's ServiceMonitor gives this service in the cluster
        (the Prometheus operator's: ``job`` and ``service`` the Service's name, its
        ``namespace``, ``endpoint`` the port's name, ``pod``, ``container``); the pod is
        named ``<deployment>-local``. ``tests/unit/test_chart_monitoring.py`` checks them
        against the rendered chart's monitors."""
        full = f"{CHART_RELEASE}-cinepulse-{self.component}"
        return {
            "job": full,
            "namespace": CHART_NAMESPACE,
            "service": full,
            "endpoint": "metrics" if self.metrics_port else "http",
            "pod": f"{full}-local",
            "container": self.component,
        }

    def register(self) -> None:
        """(Re)write this service's target file (``up`` does it for a running service too:
        a changed label applies without a restart)."""
        if self.scraped:
            port = self.metrics_port or self.port
            self._prometheus.register_target(self.name, port, labels=self.scrape_labels())

    def probe(self) -> None:
        httpx.get(self.url + self.health_path, timeout=2.0).raise_for_status()

    def stop(self) -> None:
        self._prometheus.unregister_target(self.name)
        terminate(self.pid(), timeout_s=30.0)
        self.pidfile.unlink(missing_ok=True)


class KeyedService(PythonService):
    """A service whose clients send an API key, read from a mounted-Secret-like directory
    (one file per client, its content the key); the stack's own client is ``demo``."""

    keys_folder: str
    #: the clients whose keys exist before the service starts
    clients: tuple[str, ...] = ("demo",)

    @property
    def keys_dir(self) -> Path:
        return self.cfg.root / "secrets" / self.keys_folder

    def client_key(self, client: str) -> str:
        """``client``'s key (made on first use; a running service re-reads the folder)."""
        return stack_secret(self.keys_dir / client)

    def demo_key(self) -> str:
        return self.client_key("demo")

    def service_env(self) -> dict[str, str]:
        for client in self.clients:
            self.client_key(client)
        return {
            "CINEPULSE_PORT": str(self.port),
            "CINEPULSE_HOST": self.cfg.host,
            "CINEPULSE_AUTH__KEYS_PATH": str(self.keys_dir),
        }


class EventGateway(KeyedService):
    name = "event-gateway"
    module = "cinepulse_event_gateway"
    component = "gateway"
    keys_folder = "write-keys"
    #: the stack's own client replays the demo (500 events/s and more), the drills and the
    #: integration tests through the gateway: never throttled (every other key gets the
    #: gateway's default limit, 100 events/s)
    rate_limits = '{"demo": "unlimited"}'
    #: ... and sends many users' events: a server key (any user_id; every other key is a
    #: frontend key, bound to the user of its X-User-Token)
    roles = '{"demo": "server"}'

    @property
    def port(self) -> int:
        return self.cfg.gateway_port

    @property
    def metrics_port(self) -> int | None:
        return self.cfg.gateway_metrics_port

    def service_env(self) -> dict[str, str]:
        return super().service_env() | {
            "CINEPULSE_RATE_LIMITS": self.rate_limits,
            "CINEPULSE_AUTH__WRITE_ROLES": self.roles,
        }


class Archiver(PythonService):
    name = "archiver"
    module = "cinepulse_archiver"
    component = "archiver"

    @property
    def port(self) -> int:
        return self.cfg.archiver_port

    @property
    def metrics_port(self) -> int | None:
        return self.cfg.archiver_metrics_port

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
    #: ``--catalogue``: auto (the TMDB 5000 set when it is there, else synthetic), tmdb-5000
    #: or synthetic (the demo asks for synthetic when its events are synthetic)
    catalogue = "auto"

    @property
    def port(self) -> int:
        return self.cfg.tmdb_offline_port

    @property
    def distribution(self) -> str:
        return "cinepulse-devstack"

    def args(self) -> list[str]:
        return [
            "--host", self.cfg.host, "--port", str(self.port), "--token", self.token,
            "--catalogue", self.catalogue,
        ]  # fmt: skip

    def served_catalogue(self) -> str | None:
        """The catalogue the running server answers from (None: not reachable)."""
        try:
            r = httpx.get(self.url + self.health_path, timeout=2.0)
            r.raise_for_status()
            return str(r.json().get("catalogue", "tmdb-5000"))
        except (httpx.HTTPError, ValueError):
            return None


class SparkStream(PythonService):
    """The Spark streaming job (both queries, ``local[2]``): Kafka into the star schema. Its
    driver serves ``/metrics``; the checkpoints live in the stack's folder."""

    name = "spark-stream"
    module = "cinepulse_spark_jobs"
    health_path = "/metrics"
    component = "spark-stream"

    def scrape_labels(self) -> dict[str, str]:
        """The driver is scraped by the chart's PodMonitor (``<release>-cinepulse-spark``):
        ``job`` is ``<namespace>/<PodMonitor>``, no ``service``; the Spark operator names the
        driver pod ``<application>-driver`` and its container ``spark-kubernetes-driver``."""
        app = f"{CHART_RELEASE}-cinepulse-{self.component}"
        return {
            "job": f"{CHART_NAMESPACE}/{CHART_RELEASE}-cinepulse-spark",
            "namespace": CHART_NAMESPACE,
            "endpoint": "metrics",
            "pod": f"{app}-driver",
            "container": "spark-kubernetes-driver",
        }

    @property
    def port(self) -> int:
        return self.cfg.spark_metrics_port

    @property
    def distribution(self) -> str:
        return "cinepulse-spark-jobs"

    def args(self) -> list[str]:
        return ["stream"]

    def service_env(self) -> dict[str, str]:
        env = {
            "CINEPULSE_METRICS_PORT": str(self.port),
            "CINEPULSE_CHECKPOINT_DIR": str(self.dir / "checkpoints"),
        }
        # the emotion model the comments are classified with: the caller's, when it points
        # elsewhere than the default (cinepulse_emotion.MODEL_ENV)
        model = os.environ.get("CINEPULSE_EMOTION_MODEL")
        return env | ({"CINEPULSE_EMOTION_MODEL": model} if model else {})


class ApiKeyedService(KeyedService):
    """A service reading per-user data with the api's key set (``.stack/secrets/api-keys``,
    one file per client) and roles: the stack's ``demo`` client and the ``explorer`` are
    ``internal`` (read any user)."""

    keys_folder = "api-keys"
    clients = ("demo", "explorer")
    roles = '{"demo": "internal", "explorer": "internal"}'

    def service_env(self) -> dict[str, str]:
        return super().service_env() | {"CINEPULSE_AUTH__ROLES": self.roles}


class Api(ApiKeyedService):
    """The serving API; the ``demo`` client is ``internal`` (reads any user's stats)."""

    name = "api"
    module = "cinepulse_api"
    component = "api"

    @property
    def port(self) -> int:
        return self.cfg.api_port

    @property
    def metrics_port(self) -> int | None:
        return self.cfg.api_metrics_port

    def service_env(self) -> dict[str, str]:
        return super().service_env() | {
            "CINEPULSE_ARCHIVER_URL": f"http://{self.cfg.host}:{self.cfg.archiver_port}",
        }


class Recommender(ApiKeyedService):
    """The recommender's HTTP API (``serve``), with the api's keys and roles (``demo_key()``
    reads any user's recommendations); it polls the model registry every 5 s here."""

    name = "recommender"
    module = "cinepulse_recommender"
    component = "recommender"

    @property
    def port(self) -> int:
        return self.cfg.recommender_port

    @property
    def metrics_port(self) -> int | None:
        return self.cfg.recommender_metrics_port

    def args(self) -> list[str]:
        return ["serve"]

    def service_env(self) -> dict[str, str]:
        return super().service_env() | {"CINEPULSE_POLL_INTERVAL_S": "5"}


class Explorer(PythonService):
    """The Streamlit explorer, reading as ``cinepulse_explorer``: a LOGIN member of the
    read-only role (migration 0008), made by :meth:`ensure_reader` before it starts; it asks
    the recommender with the ``explorer`` client's key (an internal client of the api's key
    set, ``recommender_key``)."""

    name = "explorer"
    module = "cinepulse_explorer"
    component = "explorer"
    health_path = "/_stcore/health"
    scraped = True  # /metrics: on its metrics port (cinepulse_explorer.__main__)
    reader = "cinepulse_explorer"

    def __init__(
        self,
        cfg: StackSettings,
        stack_env: EnvProvider,
        prometheus: Prometheus,
        reader_dsn: Callable[[], str],
        recommender_key: Callable[[], str],
    ) -> None:
        super().__init__(cfg, stack_env, prometheus)
        self._reader_dsn = reader_dsn
        self._recommender_key = recommender_key

    @property
    def port(self) -> int:
        return self.cfg.explorer_port

    @property
    def metrics_port(self) -> int | None:
        return self.cfg.explorer_metrics_port

    def service_env(self) -> dict[str, str]:
        return {
            "CINEPULSE_ADDRESS": self.cfg.host,
            "CINEPULSE_PORT": str(self.port),
            "CINEPULSE_POSTGRES__DSN": self._reader_dsn(),
            "CINEPULSE_RECOMMENDER_URL": f"http://{self.cfg.host}:{self.cfg.recommender_port}",
            "CINEPULSE_RECOMMENDER_API_KEY": self._recommender_key(),
        }
