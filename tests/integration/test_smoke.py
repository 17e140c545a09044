"""The foundation's smoke path: one event through real Kafka into PostgreSQL staging."""

from __future__ import annotations

import psycopg

from cinepulse_common.settings import KafkaSettings, PostgresSettings
from cinepulse_devstack.smoke import run_smoke


def test_one_event_through_kafka_into_staging(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings
) -> None:
    result = run_smoke(kafka_settings, pg_settings)
    assert result.topic == kafka_settings.topic("user_rating_log")
    with psycopg.connect(pg_settings.dsn.get_secret_value()) as conn:
        row = conn.execute(
            "SELECT event_type, user_id, movie_id, source_topic, source_partition, source_offset,"
            " source_flag FROM stg_user_logs WHERE event_id = %s",
            (result.event_id,),
        ).fetchone()
    assert row == (
        "rate",
        "smoke-user",
        603,
        result.topic,
        result.partition,
        result.offset,
        "smoke",
    )
