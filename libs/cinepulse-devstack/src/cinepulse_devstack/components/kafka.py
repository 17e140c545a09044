"""Apache Kafka, one node in KRaft mode."""

from __future__ import annotations

import base64
import logging
import uuid
from importlib import resources
from pathlib import Path

from cinepulse_common.maven import MavenError, copy_dependencies
from cinepulse_devstack.components.base import Component
from cinepulse_devstack.config import StackSettings
from cinepulse_devstack.procs import (
    StackError,
    require_tool,
    run,
    spawn,
)

log = logging.getLogger("cinepulse.stack")


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

    def __init__(self, cfg: StackSettings) -> None:
        super().__init__(cfg)
        #: more PLAINTEXT listeners, name -> (the port the broker binds, the "host:port" it
        #: advertises there), read when the broker starts. A client that bootstraps through
        #: such a port is told to reach the broker at the advertised address: the network
        #: fault drill advertises a Toxiproxy proxy in front of its own listener, so its
        #: gateway's producer reaches the broker through the proxy only (every other client
        #: keeps the PLAINTEXT listener).
        self.extra_listeners: dict[str, tuple[int, str]] = {}

    @property
    def ports(self) -> list[int]:
        extra = [port for port, _ in self.extra_listeners.values()]
        return [self.cfg.kafka_port, self.cfg.kafka_controller_port, *extra]

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
        extra = self.extra_listeners
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{h}:{c}",
            "listeners": ",".join(
                [
                    f"PLAINTEXT://{h}:{p}",
                    *(f"{n}://{h}:{b}" for n, (b, _) in extra.items()),
                    f"CONTROLLER://{h}:{c}",
                ]
            ),
            "advertised.listeners": ",".join(
                [f"PLAINTEXT://{h}:{p}", *(f"{n}://{a}" for n, (_, a) in extra.items())]
            ),
            "listener.security.protocol.map": ",".join(
                ["PLAINTEXT:PLAINTEXT", *(f"{n}:PLAINTEXT" for n in extra), "CONTROLLER:PLAINTEXT"]
            ),
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
