"""The archiver (faust) reads a Kafka that accepts only SASL/SCRAM clients.

A private Kafka (tests.integration.sasl_kafka) has one client listener, SASL_PLAINTEXT with
SCRAM-SHA-512. The archiver gets the same CINEPULSE_KAFKA__* variables the chart passes for
an external Kafka; before faust was given broker_credentials it could not even connect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException

from cinepulse_common import topics
from cinepulse_common.kafka import ensure_topics, make_admin, make_producer
from cinepulse_common.settings import KafkaSettings, MongoSettings
from cinepulse_devstack import Stack
from tests.factories import event
from tests.integration.sasl_kafka import SaslKafka
from tests.integration.services import ServiceProcess, free_port
from tests.integration.test_gateway_archiver import archiver_env, wait_for_docs

pytestmark = pytest.mark.integration

USER, PASSWORD = "cinepulse", "scram-pw-for-tests"


@pytest.fixture(scope="module")
def sasl_kafka(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslKafka]:
    kafka = SaslKafka(stack, tmp_path_factory.mktemp("sasl-kafka"), {USER: PASSWORD}).start()
    yield kafka
    kafka.stop()


@pytest.fixture
def kafka(sasl_kafka: SaslKafka) -> KafkaSettings:
    k = sasl_kafka.settings(USER, PASSWORD, topic_prefix="sasl.")
    ensure_topics(make_admin(k), [k.topic(t) for t in topics.ALL_TOPICS], partitions=3)
    return k


def test_a_wrong_password_is_refused(sasl_kafka: SaslKafka) -> None:
    wrong = sasl_kafka.settings(USER, "not-the-password")
    with pytest.raises(KafkaException):
        make_admin(wrong).list_topics(timeout=5)


def test_the_archiver_consumes_over_sasl_scram(
    kafka: KafkaSettings, mongo_settings: MongoSettings, tmp_path: Path
) -> None:
    port = free_port()
    env = archiver_env(kafka, mongo_settings, tmp_path / "archiver-data") | {
        "CINEPULSE_WEB_PORT": str(port),
        # what the chart passes for an external Kafka with SASL
        "CINEPULSE_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "CINEPULSE_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "CINEPULSE_KAFKA__SASL_USERNAME": USER,
        "CINEPULSE_KAFKA__SASL_PASSWORD": PASSWORD,
    }
    archiver = ServiceProcess("cinepulse_archiver", env, port, tmp_path / "archiver.log")
    archiver.start(ready_path="/readyz", timeout_s=120)
    try:
        producer = make_producer(kafka)
        sent = [event(t, user_id=f"user-{i}") for i, t in enumerate(["rate", "watch"] * 10)]
        for ev in sent:
            name = topics.USER_RATING_LOG if ev["event_type"] == "rate" else topics.USER_WATCH_LOG
            producer.produce(kafka.topic(name), key=ev["user_id"].encode(), value=json.dumps(ev))
        assert producer.flush(30) == 0
        docs = wait_for_docs(mongo_settings, len(sent), timeout_s=120)
    except BaseException:
        print(archiver.tail(60))
        raise
    finally:
        archiver.stop()
    assert sorted(d["event_id"] for d in docs) == sorted(e["event_id"] for e in sent)


def test_the_spark_source_reads_over_sasl_scram(
    sasl_kafka: SaslKafka, spark_with_jars: Any, tmp_path: Path
) -> None:
    from cinepulse_common.settings import PostgresSettings
    from cinepulse_spark_jobs.settings import SparkJobsSettings
    from cinepulse_spark_jobs.stream import _source

    k = sasl_kafka.settings(USER, PASSWORD, topic_prefix="spark.")
    name = k.topic(topics.USER_RATING_LOG)
    ensure_topics(make_admin(k), [name], partitions=1)
    producer = make_producer(k)
    sent = [event("rate") for _ in range(7)]
    for ev in sent:
        producer.produce(name, key=ev["user_id"].encode(), value=json.dumps(ev))
    assert producer.flush(30) == 0

    settings = SparkJobsSettings(
        kafka=k,
        postgres=PostgresSettings(dsn="postgresql://u:p@127.0.0.1:9/db"),
        checkpoint_dir=tmp_path,
    )
    query = (
        _source(spark_with_jars, settings, [topics.USER_RATING_LOG], 1000)
        .selectExpr("CAST(value AS STRING) AS value")
        .writeStream.format("memory")
        .queryName("sasl_ratings")
        .option("checkpointLocation", str(tmp_path / "q"))
        .trigger(availableNow=True)
        .start()
    )
    try:
        assert query.awaitTermination(180), "the query did not finish in 180 s"
        assert query.exception() is None
        values = [r.value for r in spark_with_jars.sql("SELECT value FROM sasl_ratings").collect()]
    finally:
        query.stop()
    assert sorted(json.loads(v)["event_id"] for v in values) == sorted(e["event_id"] for e in sent)
