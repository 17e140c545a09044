"""The real components of the local stack, each started as a process on loopback.

Each component knows how to install itself (download or build, cached), start, answer a
probe (a real protocol request, not just an open port), report its pid and stop.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import uuid
from abc import ABC, abstractmethod
from importlib import resources
from pathlib import Path

import httpx
import yaml

from cinepulse_common.maven import MavenError, copy_dependencies
from cinepulse_devstack.config import StackSettings
from cinepulse_devstack.procs import (
    StackError,
    kill,
    pid_alive,
    read_pid,
    require_tool,
    run,
    spawn,
    stack_secret,
    terminate,
)

log = logging.getLogger("cinepulse.stack")


class Component(ABC):
    name: str

    def __init__(self, cfg: StackSettings) -> None:
        self.cfg = cfg
        self.dir = cfg.root / self.name

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def pidfile(self) -> Path:
        return self.dir / f"{self.name}.pid"

    @property
    @abstractmethod
    def ports(self) -> list[int]: ...

    @property
    def version(self) -> str:
        return "?"

    @abstractmethod
    def install(self) -> None:
        """Fetch or build what the component needs (cached; a no-op when present)."""

    @abstractmethod
    def start(self) -> None:
        """Spawn the process (the caller has checked it is not running and waits for it)."""

    @abstractmethod
    def probe(self) -> None:
        """Raise unless the component answers a real request."""

    def pid(self) -> int | None:
        return read_pid(self.pidfile)

    def alive(self) -> bool:
        return pid_alive(self.pid())

    def stop(self) -> None:
        terminate(self.pid())
        self.pidfile.unlink(missing_ok=True)

    def kill(self, sig: int = signal.SIGKILL, timeout_s: float = 30.0) -> int:
        """Send ``sig`` (default SIGKILL: no shutdown hook runs) to the running process and
        its process group, as a crash or an OOM kill would, and wait until they are gone.
        Returns the pid. The pid file stays: ``status`` names the dead process and ``up``
        starts it again."""
        pid = self.pid()
        if pid is None or not self.alive():
            raise StackError(f"{self.name} is not running (pid {pid}): nothing to kill")
        try:
            kill(pid, sig, timeout_s)
        except ProcessLookupError:
            raise StackError(f"{self.name} (pid {pid}) exited before it was killed") from None
        return pid

    def env(self) -> dict[str, str]:
        return {}


# --------------------------------------------------------------------------- Kafka


def kafka_cluster_id() -> str:
    """A random KRaft cluster id (base64url of a UUID) that does not start with "-": one that
    does reads as an option to the storage tool (as Kafka's own ``Uuid.randomUuid`` avoids)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class Kafka(Component):
    """Apache Kafka, one node in KRaft mode (broker + controller), jars from Maven Central."""

    name = "kafka"

    @property
    def ports(self) -> list[int]:
        return [self.cfg.kafka_port, self.cfg.kafka_controller_port]

    @property
    def version(self) -> str:
        return self.cfg.kafka_version

    @property
    def libs(self) -> Path:
        return self.cfg.cache / f"kafka-{self.cfg.kafka_version}" / "libs"

    @property
    def bootstrap(self) -> str:
        return f"{self.cfg.host}:{self.cfg.kafka_port}"

    def install(self) -> None:
        marker = self.libs.parent / ".complete"
        if marker.exists():
            return
        require_tool("java", "install a JRE 17: apt-get install openjdk-17-jre-headless")
        require_tool("mvn", "install Maven: apt-get install maven")
        self.libs.parent.mkdir(parents=True, exist_ok=True)
        pom = self.libs.parent / "pom.xml"
        pom.write_text(
            resources.files("cinepulse_devstack")
            .joinpath("kafka-pom.xml")
            .read_text()
            .replace("${kafka.version}", self.cfg.kafka_version)
        )
        log.info("kafka: resolving kafka_2.13:%s jars from Maven Central", self.cfg.kafka_version)
        try:
            copy_dependencies(pom, self.libs)
        except MavenError as exc:
            raise StackError(
                f"downloading the Kafka jars with Maven failed (Maven Central must be "
                f"reachable): {exc}"
            ) from None
        marker.write_text(self.cfg.kafka_version)

    def _write_config(self) -> Path:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        h, p, c = self.cfg.host, self.cfg.kafka_port, self.cfg.kafka_controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{h}:{c}",
            "listeners": f"PLAINTEXT://{h}:{p},CONTROLLER://{h}:{c}",
            "advertised.listeners": f"PLAINTEXT://{h}:{p}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": str(self.cfg.kafka_partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "min.insync.replicas": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.retention.hours": "168",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        server = self.dir / "server.properties"
        server.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.dir / "log4j.properties").write_text(
            "log4j.rootLogger=INFO, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka=INFO\nlog4j.logger.org.apache.kafka=INFO\n"
            "log4j.logger.state.change.logger=WARN\nlog4j.logger.kafka.log.LogCleaner=WARN\n"
        )
        return server

    def _java(self, main: str, *args: str, heap: str = "256m") -> list[str]:
        return [
            "java",
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.dir}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def start(self) -> None:
        server = self._write_config()
        if not (self.dir / "data" / "meta.properties").exists():
            cluster_id = kafka_cluster_id()
            run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(server),
                ),
                what="formatting Kafka's KRaft storage",
            )
        spawn(
            self._java("kafka.Kafka", str(server), heap=self.cfg.kafka_heap),
            log=self.log_path,
            pidfile=self.pidfile,
            cwd=self.dir,
        )

    def probe(self) -> None:
        from confluent_kafka.admin import AdminClient

        quiet = logging.getLogger("cinepulse.stack.librdkafka")
        quiet.setLevel(logging.CRITICAL)
        conf: dict[str, object] = {"bootstrap.servers": self.bootstrap, "logger": quiet}
        admin = AdminClient(conf)  # type: ignore[arg-type]
        md = admin.list_topics(timeout=2)
        if not md.brokers:
            raise StackError("kafka answered without brokers")

    def env(self) -> dict[str, str]:
        return {"CINEPULSE_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap}


# --------------------------------------------------------------------------- PostgreSQL


class Postgres(Component):
    """PostgreSQL 15 from Debian's package, as a cluster in a project-owned data directory."""

    name = "postgres"

    @property
    def ports(self) -> list[int]:
        return [self.cfg.postgres_port]

    @property
    def bindir(self) -> Path:
        candidates = sorted(glob.glob("/usr/lib/postgresql/15/bin")) + sorted(
            glob.glob("/usr/lib/postgresql/*/bin"), reverse=True
        )
        for c in candidates:
            if (Path(c) / "initdb").exists():
                return Path(c)
        pg_ctl = shutil.which("pg_ctl")
        if pg_ctl:
            return Path(pg_ctl).resolve().parent
        raise StackError("PostgreSQL server not found: apt-get install postgresql-15 (make setup)")

    @property
    def version(self) -> str:
        return run([str(self.bindir / "postgres"), "--version"], what="postgres --version").strip()

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def password_file(self) -> Path:
        return self.cfg.root / "secrets" / "postgres-password"

    def _as_owner(self) -> list[str]:
        """initdb/postgres refuse to run as root: run them as the 'postgres' system user."""
        if os.geteuid() != 0:
            return []
        return ["runuser", "-u", "postgres", "--"]

    def _prepare_dir(self) -> None:
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise StackError(
                    "running as root needs the 'postgres' system user: apt-get install postgresql-15"
                ) from None
            probe = subprocess.run(
                ["runuser", "-u", "postgres", "--", "test", "-x", str(self.cfg.root)],
                check=False,
            )
            if probe.returncode != 0 and not self.dir.is_symlink():
                # the checkout is not traversable by 'postgres' (e.g. under /root): keep the
                # cluster outside and link it into .stack/
                digest = hashlib.sha256(str(self.cfg.root).encode()).hexdigest()[:12]
                outside = Path(tempfile.gettempdir()) / f"cinepulse-pg-{digest}"
                outside.mkdir(parents=True, exist_ok=True)
                if self.dir.exists():
                    shutil.rmtree(self.dir)
                self.dir.symlink_to(outside)
            self.dir.mkdir(parents=True, exist_ok=True)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        else:
            self.dir.mkdir(parents=True, exist_ok=True)

    def password(self) -> str:
        if not self.password_file.exists():
            self.password_file.parent.mkdir(parents=True, exist_ok=True)
            self.password_file.write_text(secrets.token_urlsafe(18))
            self.password_file.chmod(0o600)
        return self.password_file.read_text().strip()

    def install(self) -> None:
        _ = self.bindir
        if os.geteuid() == 0:
            require_tool("runuser", "apt-get install util-linux")

    def _initdb(self) -> None:
        self._prepare_dir()
        pwfile = self.dir / ".pwfile"
        pwfile.write_text(self.password())
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        pwfile.chmod(0o600)
        try:
            run(
                [
                    *self._as_owner(),
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    self.cfg.postgres_user,
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ],
                what="initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def pid(self) -> int | None:
        return read_pid(self.data / "postmaster.pid")

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        sock = self.dir / "run"
        sock.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(sock, pw.pw_uid, pw.pw_gid)
        opts = " ".join(
            [
                f"-c listen_addresses={self.cfg.host}",
                f"-p {self.cfg.postgres_port}",
                f"-c unix_socket_directories={sock}",
                "-c max_connections=200",
                "-c shared_buffers=256MB",
                # commit times per row: the freshness benchmark reads them
                "-c track_commit_timestamp=on",
                "-c log_min_messages=warning",
            ]
        )
        run(
            [
                *self._as_owner(),
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log_path),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
            what="pg_ctl start",
            hint=f"see {self.log_path}",
        )

    def probe(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn("postgres"), connect_timeout=2) as conn:
            conn.execute("SELECT 1")

    def stop(self) -> None:
        if self.alive():
            subprocess.run(
                [
                    *self._as_owner(),
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ],
                capture_output=True,
                check=False,
            )
        terminate(self.pid())

    def admin_dsn(self, database: str | None = None) -> str:
        db = database or self.cfg.postgres_db
        return (
            f"postgresql://{self.cfg.postgres_user}:{self.password()}"
            f"@{self.cfg.host}:{self.cfg.postgres_port}/{db}"
        )

    def login_role(self, role: str, member_of: str) -> str:
        """A LOGIN role that is a member of ``member_of`` and of nothing else, its sessions
        read-only by default (made, or its password reset, from a secret kept under the
        stack's folder, by the code the chart's metabase-setup hook runs:
        :func:`cinepulse_common.postgres.ensure_login_role`); returns its DSN to the stack's
        database."""
        import psycopg

        from cinepulse_common.postgres import MissingRole, RoleError, ensure_login_role

        password = stack_secret(self.cfg.root / "secrets" / f"{role}.password")
        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            try:
                ensure_login_role(conn, role, password, member_of=member_of, read_only=True)
            except MissingRole as exc:
                raise StackError(f"{exc}: run `make migrate` first") from None
            except RoleError as exc:
                raise StackError(str(exc)) from None
        return (
            f"postgresql://{role}:{password}@{self.cfg.host}:{self.cfg.postgres_port}/"
            f"{self.cfg.postgres_db}"
        )

    def ensure_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
        if not exists:
            self.create_database(name)

    def create_database(
        self, name: str, *, template: str | None = None, replace: bool = False
    ) -> str:
        """Create ``name`` (a copy of ``template`` if given; dropped first if ``replace``);
        return its DSN."""
        import psycopg
        from psycopg import sql

        if replace:
            self.drop_database(name)
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.admin_dsn("postgres"), autocommit=True) as conn:
            conn.execute(query)
        return self.admin_dsn(name)

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def env(self) -> dict[str, str]:
        return {"CINEPULSE_POSTGRES__DSN": self.admin_dsn()}


# --------------------------------------------------------------------------- MongoDB protocol


class Mongo(Component):
    """A MongoDB-protocol server: ``mongod`` when on PATH, else FerretDB v1 on SQLite,
    built from the Go module proxy."""

    name = "mongo"

    @property
    def ports(self) -> list[int]:
        return [self.cfg.mongo_port] + ([] if self.mongod else [self.cfg.ferretdb_debug_port])

    @property
    def mongod(self) -> str | None:
        return shutil.which("mongod")

    @property
    def binary(self) -> Path:
        return self.cfg.cache / f"ferretdb-{self.cfg.ferretdb_version}" / "ferretdb"

    @property
    def version(self) -> str:
        if self.mongod:
            return run([self.mongod, "--version"], what="mongod --version").splitlines()[0]
        return f"FerretDB {self.cfg.ferretdb_version} (SQLite backend)"

    def install(self) -> None:
        if self.mongod or self.binary.exists():
            return
        go = require_tool("go", "install Go 1.22+ (the Go toolchain builds FerretDB)")
        module = f"github.com/FerretDB/FerretDB@{self.cfg.ferretdb_version}"
        env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
        log.info("mongo: building FerretDB %s from the Go module proxy", self.cfg.ferretdb_version)
        with tempfile.TemporaryDirectory() as tmp:
            info = json.loads(
                run(
                    [go, "mod", "download", "-json", module],
                    what="go mod download",
                    env=env,
                    cwd=tmp,
                )
            )
            src = Path(tmp) / "src"
            shutil.copytree(info["Dir"], src)
            for p in src.rglob("*"):
                p.chmod(p.stat().st_mode | 0o200)
            src.chmod(0o755)
            # the module zip lacks build/version/version.txt, which FerretDB embeds and checks
            # at start (upstream issues #2982, #4889)
            (src / "build" / "version" / "version.txt").write_text(self.cfg.ferretdb_version)
            self.binary.parent.mkdir(parents=True, exist_ok=True)
            run(
                [go, "build", "-o", str(self.binary), "./cmd/ferretdb"],
                what="go build FerretDB",
                env=env,
                cwd=src,
            )

    def start(self) -> None:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        if self.mongod:
            cmd = [
                self.mongod,
                "--dbpath",
                str(data),
                "--bind_ip",
                self.cfg.host,
                "--port",
                str(self.cfg.mongo_port),
            ]
        else:
            cmd = [
                str(self.binary),
                f"--listen-addr={self.cfg.host}:{self.cfg.mongo_port}",
                "--handler=sqlite",
                f"--sqlite-url=file:{data}/",
                f"--state-dir={self.dir}",
                f"--debug-addr={self.cfg.host}:{self.cfg.ferretdb_debug_port}",
                "--telemetry=disable",
                "--log-level=warn",
            ]
        spawn(cmd, log=self.log_path, pidfile=self.pidfile, cwd=self.dir)

    @property
    def url(self) -> str:
        return f"mongodb://{self.cfg.host}:{self.cfg.mongo_port}/"

    def probe(self) -> None:
        from pymongo import MongoClient

        client: MongoClient[dict[str, object]]
        with MongoClient(self.url, serverSelectionTimeoutMS=2000) as client:
            client.admin.command("ping")

    def env(self) -> dict[str, str]:
        return {"CINEPULSE_MONGO__URL": self.url}


# --------------------------------------------------------------------------- Prometheus


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
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [{"targets": [f"{self.cfg.host}:{self.cfg.pushgateway_port}"]}],
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


# --------------------------------------------------------------------------- Pushgateway


class Pushgateway(Component):
    """The Prometheus Pushgateway from Debian's package: where batch jobs (the TMDB fetcher,
    the pandas fallback, the reconciliation) push their metrics; Prometheus scrapes it with
    ``honor_labels`` (``job="pushgateway"``). Nothing is persisted: a restart forgets."""

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
