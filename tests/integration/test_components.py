"""The real components answer: Kafka, PostgreSQL, the MongoDB protocol, Prometheus."""

from __future__ import annotations

import time
from uuid import uuid4

import httpx
import pytest
from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry, Counter, start_http_server
from pymongo.errors import DuplicateKeyError

from cinepulse_common.kafka import (
    check_kafka,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
)
from cinepulse_common.mongo import check_mongo, make_client, raw_database
from cinepulse_common.postgres import check_postgres, connect
from cinepulse_common.settings import KafkaSettings, MongoSettings, PostgresSettings
from cinepulse_devstack import Stack


def test_stack_status_is_all_up(stack: Stack) -> None:
    statuses = stack.status()
    assert [s.name for s in statuses] == ["postgres", "kafka", "mongo", "prometheus", "pushgateway"]
    assert all(s.ok for s in statuses), statuses


def test_kafka_round_trip_keeps_key_order(kafka_settings: KafkaSettings) -> None:
    assert check_kafka(kafka_settings) == 1
    topic = kafka_settings.topic("user_rating_log")
    producer = make_producer(kafka_settings)
    acked = []
    for i in range(20):
        producer.produce(
            topic,
            key=b"user-7",
            value=f"{i}".encode(),
            on_delivery=lambda err, msg: acked.append((err, msg.partition())),
        )
    assert producer.flush(15) == 0
    assert all(err is None for err, _ in acked)
    partitions = {p for _, p in acked}
    assert len(partitions) == 1, "one key must map to one partition"

    consumer = make_consumer(kafka_settings, group_id=f"g-{uuid4()}")
    consumer.assign([TopicPartition(topic, partitions.pop(), 0)])
    values: list[int] = []
    deadline = time.monotonic() + 20
    while len(values) < 20 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            assert msg.key() == b"user-7"
            values.append(int(msg.value()))
    consumer.close()
    assert values == list(range(20))


def test_ensure_topics_is_idempotent(kafka_settings: KafkaSettings) -> None:
    admin = make_admin(kafka_settings)
    name = kafka_settings.topic("extra")
    assert ensure_topics(admin, [name], partitions=1) == [name]
    assert ensure_topics(admin, [name], partitions=1) == []


def test_postgres_answers(pg_settings: PostgresSettings) -> None:
    check_postgres(pg_settings)
    with connect(pg_settings) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "30s"
        assert conn.execute("SELECT version()").fetchone()[0].startswith("PostgreSQL 15")


def test_mongo_protocol_upsert_and_unique_index(mongo_settings: MongoSettings) -> None:
    check_mongo(mongo_settings)
    with make_client(mongo_settings) as client:
        logs = raw_database(client, mongo_settings)["user_logs"]
        logs.create_index("event_id", unique=True)
        doc = {
            "event_id": "e1",
            "record": {"rating": 4.5},
            "topic": "user_rating_log",
            "partition": 0,
            "offset": 3,
        }
        for _ in range(3):  # a redelivery writes no duplicate
            logs.update_one({"event_id": "e1"}, {"$setOnInsert": doc}, upsert=True)
        assert logs.count_documents({}) == 1
        with pytest.raises(DuplicateKeyError):
            logs.insert_one({"event_id": "e1"})
        assert logs.find_one({"event_id": "e1"})["record"] == {"rating": 4.5}


def test_prometheus_scrapes_a_registered_service(stack: Stack) -> None:
    registry = CollectorRegistry()
    Counter("cinepulse_probe_total", "test", registry=registry).inc(5)
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    port = server.server_port
    service = f"probe-{uuid4().hex[:6]}"
    stack.prometheus.register_target(service, port)
    try:
        deadline = time.monotonic() + 60
        value = None
        while time.monotonic() < deadline:
            r = httpx.get(
                f"{stack.prometheus.url}/api/v1/query",
                params={"query": f'cinepulse_probe_total{{service="{service}"}}'},
            )
            result = r.json()["data"]["result"]
            if result:
                value = float(result[0]["value"][1])
                break
            time.sleep(1)
        assert value == 5.0
    finally:
        stack.prometheus.unregister_target(service)
        server.shutdown()


def test_pushed_job_metrics_reach_prometheus(stack: Stack) -> None:
    """A batch job's metrics, pushed the way the jobs push them, are scraped from the
    Pushgateway under the job's own labels (honor_labels)."""
    from cinepulse_common.jobs import push_metrics

    job = f"probe-job-{uuid4().hex[:6]}"
    registry = CollectorRegistry()
    Counter("cinepulse_probe_pushed_total", "test", registry=registry).inc(3)
    assert push_metrics(stack.pushgateway.url, job, registry)
    try:
        deadline = time.monotonic() + 60
        result: list[dict[str, object]] = []
        while time.monotonic() < deadline and not result:
            r = httpx.get(
                f"{stack.prometheus.url}/api/v1/query",
                params={"query": f'cinepulse_probe_pushed_total{{job="{job}"}}'},
            )
            result = r.json()["data"]["result"]
            if not result:
                time.sleep(1)
        assert result, f"no series of job {job} scraped from the Pushgateway"
        assert float(result[0]["value"][1]) == 3.0  # type: ignore[index]
    finally:
        httpx.delete(f"{stack.pushgateway.url}/metrics/job/{job}", timeout=5)
