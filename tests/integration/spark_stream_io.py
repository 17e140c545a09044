"""What the Spark stream integration tests share: user events produced to their topics (the
stream's input) and what the events query landed in PostgreSQL (its output), counted."""

from __future__ import annotations

import json
from typing import Any

from cinepulse_common import topics
from cinepulse_common.kafka import make_producer
from cinepulse_common.postgres import connect
from cinepulse_common.settings import KafkaSettings, PostgresSettings

TOPIC_OF = {
    "watch": topics.USER_WATCH_LOG,
    "rate": topics.USER_RATING_LOG,
    "comment": topics.USER_COMMENT_LOG,
    "click": topics.USER_CLICK_LOG,
}
FACTS = ("fact_watch", "fact_rating", "fact_comment", "fact_click")


def produce(kafka_settings: KafkaSettings, events: list[dict[str, Any]]) -> None:
    """``events`` as JSON, each to its type's topic (anything else to the click log), keyed by
    user id."""
    producer = make_producer(kafka_settings)
    for ev in events:
        producer.produce(
            kafka_settings.topic(TOPIC_OF.get(ev.get("event_type"), topics.USER_CLICK_LOG)),
            key=str(ev.get("user_id")).encode(),
            value=json.dumps(ev).encode(),
        )
    assert producer.flush(10) == 0


def counts(pg: PostgresSettings) -> dict[str, Any]:
    """Rows in staging, the facts, ``dim_user`` and quarantine (by rule), and the facts'
    source flags: equal before and after a replay when nothing was written twice."""
    with connect(pg) as conn:

        def one(q: str) -> Any:
            return conn.execute(q).fetchone()[0]  # type: ignore[index]

        return {
            "stg": one("SELECT count(*) FROM stg_user_logs"),
            "comments": one("SELECT count(*) FROM stg_comments"),
            "facts": {t: one(f"SELECT count(*) FROM {t}") for t in FACTS},
            "users": one("SELECT count(*) FROM dim_user"),
            "quarantine": dict(
                conn.execute("SELECT rule, count(*) FROM quarantine GROUP BY rule").fetchall()
            ),
            "flags": {
                r[0]
                for t in FACTS
                for r in conn.execute(f"SELECT DISTINCT source_flag FROM {t}").fetchall()
            },
        }


def fact_event_ids(pg: PostgresSettings) -> list[str]:
    """The event ids of every fact (all four tables)."""
    union = " UNION ALL ".join(f"SELECT event_id FROM {t}" for t in FACTS)
    with connect(pg) as conn:
        return [str(r[0]) for r in conn.execute(union)]
