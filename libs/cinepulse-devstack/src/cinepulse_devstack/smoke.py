"""Smoke check of the foundation: one event through real Kafka into PostgreSQL staging.

Produces one ``rate`` event (keyed by user id, acks=all), consumes it back from its topic,
validates the envelope, upserts it into ``stg_user_logs`` and reads the row back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from confluent_kafka import KafkaError, Message, TopicPartition

from cinepulse_common.events import Event, parse_event
from cinepulse_common.kafka import make_consumer, make_producer
from cinepulse_common.postgres import connect
from cinepulse_common.rules import active_rules
from cinepulse_common.settings import KafkaSettings, PostgresSettings


@dataclass(frozen=True)
class SmokeResult:
    event_id: UUID
    topic: str
    partition: int
    offset: int
    seconds: float


STG_UPSERT = """
INSERT INTO stg_user_logs (event_id, event_type, user_id, movie_id, occurred_at, received_at,
                           session_id, payload, source_topic, source_partition, source_offset,
                           source_flag)
VALUES (%(event_id)s, %(event_type)s, %(user_id)s, %(movie_id)s, %(occurred_at)s,
        %(received_at)s, %(session_id)s, %(payload)s, %(topic)s, %(partition)s, %(offset)s,
        %(source_flag)s)
ON CONFLICT (event_id) DO NOTHING
"""


def stage_event(conn: object, event: Event, msg: Message, source_flag: str) -> None:
    from psycopg.types.json import Jsonb

    conn.execute(  # type: ignore[attr-defined]
        STG_UPSERT,
        {
            "event_id": event.event_id,
            "event_type": event.event_type.value,
            "user_id": event.user_id,
            "movie_id": event.movie_id,
            "occurred_at": event.occurred_at,
            "received_at": event.received_at,
            "session_id": event.session_id,
            "payload": Jsonb(event.payload.model_dump(mode="json")),
            "topic": msg.topic(),
            "partition": msg.partition(),
            "offset": msg.offset(),
            "source_flag": source_flag,
        },
    )


def run_smoke(
    kafka: KafkaSettings, postgres: PostgresSettings, timeout_s: float = 30.0
) -> SmokeResult:
    t0 = time.monotonic()
    rules = active_rules()
    now = datetime.now(UTC)
    event = parse_event(
        {
            "event_id": str(uuid4()),
            "event_type": "rate",
            "user_id": "smoke-user",
            "movie_id": 603,
            "occurred_at": now.isoformat(),
            "received_at": now.isoformat(),
            "payload": {"rating": 4.5},
        }
    )
    topic = kafka.topic(rules.topic_for(event.event_type))
    producer = make_producer(kafka)
    delivered: list[Message] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            raise RuntimeError(f"Kafka refused the smoke event: {err}")
        delivered.append(msg)

    producer.produce(
        topic, key=event.kafka_key(), value=event.model_dump_json(), on_delivery=on_delivery
    )
    if producer.flush(timeout_s) or not delivered:
        raise RuntimeError(f"Kafka did not acknowledge the smoke event within {timeout_s:g}s")
    ack = delivered[0]
    ack_partition, ack_offset = ack.partition(), ack.offset()
    assert ack_partition is not None and ack_offset is not None

    consumer = make_consumer(kafka, group_id=f"cinepulse-smoke-{uuid4()}")
    consumer.assign([TopicPartition(topic, ack_partition, ack_offset)])
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            received = parse_event(msg.value())
            if received.event_id != event.event_id:
                continue
            with connect(postgres) as conn:
                stage_event(conn, received, msg, "smoke")
                row = conn.execute(
                    "SELECT payload FROM stg_user_logs WHERE event_id = %s", (event.event_id,)
                ).fetchone()
            if row is None or row[0] != {"rating": 4.5}:
                raise RuntimeError(f"stg_user_logs holds {row!r} for the smoke event")
            return SmokeResult(
                event.event_id, topic, ack_partition, ack_offset, time.monotonic() - t0
            )
    finally:
        consumer.close()
    raise RuntimeError(f"the smoke event did not come back from {topic} within {timeout_s:g}s")
