"""A private single-node Kafka (KRaft) whose only client listener is SASL_PLAINTEXT with
SCRAM-SHA-512: the jars of the local stack's Kafka, its own ports and data directory, the
users' SCRAM credentials written when the storage is formatted."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from cinepulse_common.kafka import make_admin
from cinepulse_common.settings import KafkaSettings
from cinepulse_devstack import Stack
from tests.integration.services import free_port

MECHANISM = "SCRAM-SHA-512"
ADMIN = ("admin", "admin-secret")  # the broker's own (inter-broker) login


class SaslKafka:
    def __init__(self, stack: Stack, workdir: Path, users: dict[str, str]) -> None:
        self.stack = stack
        self.dir = workdir
        self.users = users
        self.port = free_port()
        self.controller_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def settings(self, user: str, password: str, topic_prefix: str = "") -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=MECHANISM,
            sasl_username=user,
            sasl_password=password,
            topic_prefix=topic_prefix,
        )

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx256m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.dir}",
            "-cp",
            f"{self.stack.kafka.libs}/*",
            main,
            *args,
        ]

    def start(self, timeout_s: float = 90.0) -> SaslKafka:
        self.dir.mkdir(parents=True, exist_ok=True)
        p, c = self.port, self.controller_port
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN[0]}" password="{ADMIN[1]}";'
        )
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{c}",
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}",
            "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{p}",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.sasl_plaintext.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "3",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        server = self.dir / "server.properties"
        server.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.dir / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        )
        scram = [
            arg
            for name, password in {ADMIN[0]: ADMIN[1], **self.users}.items()
            for arg in ("--add-scram", f"{MECHANISM}=[name={name},password={password}]")
        ]
        subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={uuid.uuid4().hex[:22]}",
                "-c",
                str(server),
                *scram,
            ),
            check=True,
            capture_output=True,
        )
        with (self.dir / "kafka.log").open("ab") as out:
            self.proc = subprocess.Popen(
                self._java("kafka.Kafka", str(server)),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        user, password = next(iter(self.users.items()))
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if make_admin(self.settings(user, password)).list_topics(timeout=2).brokers:
                    return self
            except Exception:  # not up yet  # noqa: S110
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"SASL Kafka did not start:\n{self.tail()}")
            time.sleep(1)

    def tail(self, lines: int = 40) -> str:
        log = self.dir / "kafka.log"
        return (
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
        )

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: this Kafka and nothing else
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
