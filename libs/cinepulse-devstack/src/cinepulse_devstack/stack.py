"""The stack: install, start (waiting until each component answers), check and stop."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cinepulse_common import topics
from cinepulse_devstack.components import (
    Component,
    Kafka,
    Mongo,
    Postgres,
    Prometheus,
    Pushgateway,
)
from cinepulse_devstack.config import StackSettings
from cinepulse_devstack.procs import StackError, port_open, wait_until
from cinepulse_devstack.services import (
    Api,
    Archiver,
    EventGateway,
    Explorer,
    PythonService,
    Recommender,
    SparkStream,
    TmdbOffline,
)

__all__ = ["ComponentStatus", "Stack", "StackError"]

log = logging.getLogger("cinepulse.stack")


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    ok: bool
    detail: str


class Stack:
    def __init__(self, cfg: StackSettings | None = None) -> None:
        self.cfg = cfg or StackSettings()
        self.kafka = Kafka(self.cfg)
        self.postgres = Postgres(self.cfg)
        self.mongo = Mongo(self.cfg)
        self.prometheus = Prometheus(self.cfg)
        self.pushgateway = Pushgateway(self.cfg)
        # start order; stop is the reverse
        self.components: list[Component] = [
            self.postgres,
            self.kafka,
            self.mongo,
            self.prometheus,
            self.pushgateway,
        ]
        # Cinepulse's own services: started only when asked for (by name or --services)
        self.gateway = EventGateway(self.cfg, self.infra_env, self.prometheus)
        self.archiver = Archiver(self.cfg, self.infra_env, self.prometheus)
        self.tmdb_offline = TmdbOffline(self.cfg, self.infra_env, self.prometheus)
        self.spark_stream = SparkStream(self.cfg, self.infra_env, self.prometheus)
        self.api = Api(self.cfg, self.infra_env, self.prometheus)
        self.recommender = Recommender(self.cfg, self.infra_env, self.prometheus)
        self.explorer = Explorer(
            self.cfg,
            self.infra_env,
            self.prometheus,
            lambda: self.postgres.login_role(Explorer.reader, "cinepulse_readonly"),
            lambda: self.recommender.client_key("explorer"),
        )
        self.services: list[Component] = [
            self.gateway,
            self.archiver,
            self.tmdb_offline,
            self.spark_stream,
            self.api,
            self.recommender,
            self.explorer,
        ]

    def select(self, names: list[str] | None) -> list[Component]:
        """The named components and services, in start order; none named: the components."""
        if not names:
            return self.components
        everything = [*self.components, *self.services]
        known = {c.name for c in everything}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise StackError(f"unknown component(s) {unknown}; known: {sorted(known)}")
        return [c for c in everything if c.name in names]

    # ------------------------------------------------------------------ lifecycle

    def install(self, names: list[str] | None = None) -> None:
        for c in self.select(names):
            t0 = time.monotonic()
            log.info("%s: checking install", c.name)
            c.install()
            log.info("%s: installed (%.1fs)", c.name, time.monotonic() - t0)

    def up(self, names: list[str] | None = None) -> list[str]:
        """Start what is not running; return the names started (empty when all were up)."""
        self.cfg.root.mkdir(parents=True, exist_ok=True)
        started: list[str] = []
        for c in self.select(names):
            c.install()
            c.dir.mkdir(parents=True, exist_ok=True)
            if c.alive() and self._serves_its_metrics(c):
                self._wait_ready(c)
                if isinstance(c, PythonService):
                    c.register()  # its Prometheus target, as this version labels it
                log.info("%s: already running (pid %s)", c.name, c.pid())
                continue
            busy = [p for p in c.ports if port_open(self.cfg.host, p)]
            if busy:
                raise StackError(
                    f"{c.name}: port(s) {busy} on {self.cfg.host} are taken by another process; "
                    f"stop it or set CINEPULSE_STACK_{c.name.upper()}_PORT"
                )
            t0 = time.monotonic()
            log.info("%s: starting", c.name)
            c.start()
            self._wait_ready(c)
            log.info(
                "%s: ready on %s in %.1fs (pid %s)",
                c.name,
                ",".join(str(p) for p in c.ports),
                time.monotonic() - t0,
                c.pid(),
            )
            started.append(c.name)
        self._provision(names)
        self.write_env()
        return started

    @contextmanager
    def running(self, names: list[str] | None = None) -> Iterator[Stack]:
        """``with stack.running(names):`` what is not running started (running ones
        reused), and at the end only what this started stopped again, unless
        ``CINEPULSE_KEEP_STACK`` is set (a developer keeping the stack between runs)."""
        started = self.up(names)
        try:
            yield self
        finally:
            if started and not os.environ.get("CINEPULSE_KEEP_STACK"):
                self.down(started)

    def _serves_its_metrics(self, c: Component) -> bool:
        """False for a running service that should serve /metrics on a port of its own but
        does not (started by a version without it): it is restarted, or its Prometheus
        target would stay down."""
        if not isinstance(c, PythonService) or not c.metrics_port:
            return True
        self._wait_ready(c)
        if port_open(self.cfg.host, c.metrics_port):
            return True
        log.info("%s: restarting (no /metrics on port %s yet)", c.name, c.metrics_port)
        c.stop()
        return False

    def _wait_ready(self, c: Component) -> None:
        wait_until(
            c.probe, timeout_s=self.cfg.start_timeout_s, alive=c.alive, what=c.name, log=c.log_path
        )

    def _provision(self, names: list[str] | None) -> None:
        chosen = {c.name for c in self.select(names)}
        if "postgres" in chosen:
            self.postgres.ensure_database(self.cfg.postgres_db)
        if "kafka" in chosen:
            from cinepulse_common.kafka import ensure_topics, make_admin
            from cinepulse_common.settings import KafkaSettings

            admin = make_admin(KafkaSettings(bootstrap_servers=self.kafka.bootstrap))
            created = ensure_topics(admin, topics.ALL_TOPICS, partitions=self.cfg.kafka_partitions)
            if created:
                log.info("kafka: created topics %s", ", ".join(created))

    def down(self, names: list[str] | None = None) -> None:
        """Stop the named ones; none named: every service, then every component."""
        chosen = self.select(names) if names else [*self.components, *self.services]
        for c in reversed(chosen):
            if c.alive():
                log.info("%s: stopping (pid %s)", c.name, c.pid())
                c.stop()
            c.pidfile.unlink(missing_ok=True)

    def status(self, names: list[str] | None = None) -> list[ComponentStatus]:
        out = []
        for c in self.select(names):
            pid = c.pid()
            if not c.alive():
                why = "not started" if pid is None else f"process {pid} is not running"
                out.append(ComponentStatus(c.name, False, f"DOWN ({why}; log: {c.log_path})"))
                continue
            try:
                c.probe()
            except Exception as exc:  # any probe failure is reported, not raised
                out.append(
                    ComponentStatus(
                        c.name, False, f"NOT ANSWERING (pid {pid}: {type(exc).__name__}: {exc})"
                    )
                )
                continue
            ports = ",".join(str(p) for p in c.ports)
            out.append(ComponentStatus(c.name, True, f"up (pid {pid}, {self.cfg.host}:{ports})"))
        return out

    def healthy(self) -> bool:
        return all(s.ok for s in self.status())

    # ------------------------------------------------------------------ environment

    def env(self) -> dict[str, str]:
        return self.infra_env()

    def infra_env(self) -> dict[str, str]:
        """The variables a service needs to reach the stack's components."""
        env: dict[str, str] = {}
        for c in self.components:
            env.update(c.env())
        return env

    @property
    def env_file(self) -> Path:
        return self.cfg.root / "stack.env"

    def write_env(self) -> Path:
        """``.stack/stack.env``: the variables services need to reach this stack."""
        lines = [f"{k}={v}" for k, v in sorted(self.env().items())]
        self.env_file.write_text("\n".join(lines) + "\n")
        self.env_file.chmod(0o600)
        return self.env_file

    def versions(self) -> dict[str, str]:
        return {c.name: c.version for c in self.components}
