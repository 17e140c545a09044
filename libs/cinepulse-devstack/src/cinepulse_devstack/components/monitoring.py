"""Prometheus (file_sd service discovery) and the Prometheus Pushgateway."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import yaml

from cinepulse_devstack.components.base import Component
from cinepulse_devstack.config import CHART_NAMESPACE, CHART_RELEASE
from cinepulse_devstack.procs import (
    require_tool,
    run,
    spawn,
)


class Prometheus(Component):
    """Prometheus from Debian's package. Services are discovered through file_sd target
    files in ``.stack/prometheus/targets/`` (see :meth:`register_target`)."""

    name = "prometheus"

    @property
    def ports(self) -> list[int]:
        return [self.cfg.prometheus_port]

    @property
    def url(self) -> str:
        return f"http://{self.cfg.host}:{self.cfg.prometheus_port}"

    @property
    def version(self) -> str:
        out = run([require_tool("prometheus", ""), "--version"], what="prometheus --version")
        return out.splitlines()[0] if out else "?"

    @property
    def targets_dir(self) -> Path:
        return self.dir / "targets"

    @property
    def rules_dir(self) -> Path:
        return self.dir / "rules"

    def install(self) -> None:
        require_tool("prometheus", "apt-get install prometheus (make setup)")

    def config(self) -> dict[str, object]:
        static: list[dict[str, object]] = [
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [f"{self.cfg.host}:{self.cfg.prometheus_port}"]}],
            },
        ]
        if not shutil.which("mongod"):
            static.append(
                {
                    "job_name": "ferretdb",
                    "metrics_path": "/debug/metrics",
                    "static_configs": [
                        {"targets": [f"{self.cfg.host}:{self.cfg.ferretdb_debug_port}"]}
                    ],
                }
            )
        static.append(
            {
                # the batch jobs' last pushed metrics, under their own job/instance labels
                # (honor_labels); the target itself (its `up`) gets the labels the chart's
                # Pushgateway ServiceMonitor gives it in the cluster
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [
                    {
                        "targets": [f"{self.cfg.host}:{self.cfg.pushgateway_port}"],
                        "labels": pushgateway_scrape_labels(),
                    }
                ],
            }
        )
        static.append(
            {
                "job_name": "cinepulse",
                "file_sd_configs": [
                    {"files": [f"{self.targets_dir}/*.json"], "refresh_interval": "5s"}
                ],
            }
        )
        return {
            "global": {
                "scrape_interval": self.cfg.prometheus_scrape_interval,
                "evaluation_interval": self.cfg.prometheus_scrape_interval,
            },
            "rule_files": [f"{self.rules_dir}/*.yml", f"{self.rules_dir}/*.yaml"],
            "scrape_configs": static,
        }

    def start(self) -> None:
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "prometheus.yml"
        conf.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        spawn(
            [
                require_tool("prometheus", "apt-get install prometheus"),
                f"--config.file={conf}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address={self.cfg.host}:{self.cfg.prometheus_port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=2d",
                "--log.level=warn",
            ],
            log=self.log_path,
            pidfile=self.pidfile,
            cwd=self.dir,
        )

    def probe(self) -> None:
        r = httpx.get(f"{self.url}/-/ready", timeout=2)
        r.raise_for_status()

    def register_target(
        self,
        service: str,
        port: int,
        host: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Path:
        """Make Prometheus scrape ``http://host:port/metrics`` with ``labels`` (default:
        ``service=<service>``, in ``job="cinepulse"``; a ``job`` label of their own replaces
        the job's name, as file_sd target labels do). Picked up within the file_sd refresh
        interval."""
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        path = self.targets_dir / f"{service}.json"
        entry = [
            {
                "targets": [f"{host or self.cfg.host}:{port}"],
                "labels": labels if labels is not None else {"service": service},
            }
        ]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        tmp.replace(path)  # atomic: Prometheus never reads half a file
        return path

    def unregister_target(self, service: str) -> None:
        (self.targets_dir / f"{service}.json").unlink(missing_ok=True)

    def env(self) -> dict[str, str]:
        return {"CINEPULSE_PROMETHEUS_URL": self.url}


def pushgateway_scrape_labels() -> dict[str, str]:
    """The target labels of the chart's Pushgateway ServiceMonitor (the operator's ``job`` and
    ``service`` are the Service's name; ``endpoint`` its port's name)."""
    full = f"{CHART_RELEASE}-cinepulse-pushgateway"
    return {"job": full, "service": full, "namespace": CHART_NAMESPACE, "endpoint": "http"}


class Pushgateway(Component):
    """The Prometheus Pushgateway from Debian's package: where batch jobs (the TMDB fetcher,
    the pandas fallback, the reconciliation) push their metrics; Prometheus scrapes it with
    ``honor_labels`` (the chart's ServiceMonitor labels on its target). Nothing is persisted: a
    restart forgets."""

    name = "pushgateway"

    @property
    def ports(self) -> list[int]:
        return [self.cfg.pushgateway_port]

    @property
    def url(self) -> str:
        return f"http://{self.cfg.host}:{self.cfg.pushgateway_port}"

    @property
    def version(self) -> str:
        out = run([self._binary(), "--version"], what="prometheus-pushgateway --version")
        return out.splitlines()[0] if out else "?"

    def _binary(self) -> str:
        return require_tool("prometheus-pushgateway", "apt-get install prometheus-pushgateway")

    def install(self) -> None:
        self._binary()

    def start(self) -> None:
        spawn(
            [
                self._binary(),
                f"--web.listen-address={self.cfg.host}:{self.cfg.pushgateway_port}",
                "--log.level=warn",
            ],
            log=self.log_path,
            pidfile=self.pidfile,
            cwd=self.dir,
        )

    def probe(self) -> None:
        httpx.get(f"{self.url}/-/ready", timeout=2).raise_for_status()

    def env(self) -> dict[str, str]:
        return {"CINEPULSE_PUSHGATEWAY_URL": self.url}
