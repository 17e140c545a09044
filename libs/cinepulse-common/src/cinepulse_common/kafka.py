"""Kafka client factories (confluent-kafka / librdkafka), and the security options of the
other clients, all built from the one :class:`KafkaSettings` block.

Producers are durable by default: ``acks=all`` with the idempotent producer, so a retried
send never duplicates and an acknowledged record is on every in-sync replica.

Three clients read the same settings: librdkafka (:func:`base_config`: the gateway, the
fetcher, the tools), faust's aiokafka (:func:`faust_credentials`: the archiver) and Spark's
Java client (:func:`spark_kafka_options`: the streaming job). Each gets the same security
protocol, SASL mechanism and credentials; TLS verifies the brokers against the system CAs.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cinepulse_common.settings import KafkaSettings

#: librdkafka's own log lines go through Python logging (JSON in services), not raw stderr
LIBRDKAFKA_LOGGER = logging.getLogger("librdkafka")


def base_config(s: KafkaSettings) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "bootstrap.servers": s.bootstrap_servers,
        "client.id": s.client_id,
        "security.protocol": s.security_protocol,
        "logger": LIBRDKAFKA_LOGGER,
    }
    if s.sasl_mechanism:
        cfg["sasl.mechanism"] = s.sasl_mechanism
        cfg["sasl.username"] = s.sasl_username or ""
        cfg["sasl.password"] = s.sasl_password.get_secret_value() if s.sasl_password else ""
    return cfg


#: the JAAS login module of each SASL mechanism, for Spark's Java Kafka client
JAAS_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def _jaas_quote(value: str) -> str:
    """A JAAS option value: double-quoted, with ``\\`` and ``"`` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def jaas_config(s: KafkaSettings) -> str:
    """``sasl.jaas.config`` of the Java client for the SASL settings of ``s``."""
    if not s.sasl_mechanism:
        raise ValueError("no SASL mechanism configured (CINEPULSE_KAFKA__SASL_MECHANISM)")
    password = s.sasl_password.get_secret_value() if s.sasl_password else ""
    return (
        f"{JAAS_LOGIN_MODULES[s.sasl_mechanism]} required "
        f"username={_jaas_quote(s.sasl_username or '')} password={_jaas_quote(password)};"
    )


def spark_kafka_options(s: KafkaSettings) -> dict[str, str]:
    """The ``kafka.*`` options of Spark's Kafka source (or sink) for ``s``: the brokers, the
    security protocol and, with SASL, the mechanism and the JAAS configuration."""
    opts = {
        "kafka.bootstrap.servers": s.bootstrap_servers,
        "kafka.security.protocol": s.security_protocol,
    }
    if s.uses_sasl and s.sasl_mechanism:
        opts["kafka.sasl.mechanism"] = s.sasl_mechanism
        opts["kafka.sasl.jaas.config"] = jaas_config(s)
    return opts


def ssl_context(s: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context of a Python client (system CAs, host names checked), or ``None``."""
    return ssl.create_default_context() if s.uses_tls else None


def faust_credentials(s: KafkaSettings) -> Any:
    """faust's ``broker_credentials`` for ``s`` (``None`` for PLAINTEXT): SASL with the
    mechanism, username and password (over TLS with SASL_SSL), or TLS alone with SSL."""
    import faust  # only the archiver depends on faust

    if s.security_protocol == "PLAINTEXT":
        return None
    context = ssl_context(s)
    if not s.uses_sasl:
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=s.sasl_username,
        password=s.sasl_password.get_secret_value() if s.sasl_password else "",
        mechanism=s.sasl_mechanism,
        ssl_context=context,
    )


def make_producer(s: KafkaSettings, **overrides: Any) -> Producer:
    cfg = base_config(s) | {
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    cfg.update(overrides)
    return Producer(cfg)


def make_consumer(s: KafkaSettings, group_id: str, **overrides: Any) -> Consumer:
    cfg = base_config(s) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    cfg.update(overrides)
    return Consumer(cfg)


def make_admin(s: KafkaSettings, **overrides: Any) -> AdminClient:
    return AdminClient(base_config(s) | overrides)


def ensure_topics(
    admin: AdminClient,
    topics: Iterable[str],
    partitions: int = 3,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [t for t in dict.fromkeys(topics) if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(t, num_partitions=partitions, replication_factor=replication_factor)
            for t in wanted
        ],
        operation_timeout=timeout_s,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    return created


def delete_topics(admin: AdminClient, topics: Iterable[str], timeout_s: float = 30.0) -> None:
    names = list(topics)
    if not names:
        return
    for fut in admin.delete_topics(names, operation_timeout=timeout_s).values():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
                raise


def check_kafka(s: KafkaSettings, timeout_s: float = 2.0) -> int:
    """Readiness: the cluster answers a metadata request; returns the broker count."""
    md = make_admin(s).list_topics(timeout=timeout_s)
    if not md.brokers:
        raise KafkaException("no broker in cluster metadata")
    return len(md.brokers)


def end_offsets(
    s: KafkaSettings, names: Iterable[str], timeout_s: float = 10.0
) -> dict[TopicPartition, int]:
    """The high watermark (the next offset to be written) of every partition of ``names``."""
    consumer = make_consumer(s, "cinepulse-offsets-probe", **{"enable.auto.commit": False})
    try:
        md = consumer.list_topics(timeout=timeout_s)
        out: dict[TopicPartition, int] = {}
        for name in names:
            topic = md.topics.get(name)
            if topic is None or topic.error is not None:
                raise KafkaException(f"topic {name} not found")
            for p in topic.partitions:
                tp = TopicPartition(name, p)
                out[tp] = consumer.get_watermark_offsets(tp, timeout=timeout_s)[1]
        return out
    finally:
        consumer.close()


def group_lag(
    s: KafkaSettings, group_id: str, targets: dict[TopicPartition, int], timeout_s: float = 10.0
) -> int:
    """How many records of ``targets`` (partition -> offset to reach) the consumer group has
    not committed yet (a partition it never committed counts from offset 0)."""
    consumer = make_consumer(s, group_id, **{"enable.auto.commit": False})
    try:
        committed = consumer.committed(list(targets), timeout=timeout_s)
    finally:
        consumer.close()
    lag = 0
    for tp in committed:
        goal = targets[TopicPartition(tp.topic, tp.partition)]
        lag += max(0, goal - max(tp.offset, 0))
    return lag
