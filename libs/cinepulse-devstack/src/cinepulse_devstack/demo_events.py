"""Synthetic frontend events through the real gateway, then a count of where they landed.

A small, seeded generator (users, movies, every event type) for demos when no data set is
at hand; events go out in batches at a steady rate, with progress on stderr. The summary
counts what the gateway acknowledged and what the archiver has in MongoDB.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from cinepulse_common.mongo import make_client
from cinepulse_common.settings import MongoSettings

MOVIES = [603, 27205, 155, 680, 13, 550, 122, 11, 120, 238, 424, 769, 597, 278, 129]
COMMENTS = [
    "Loved every minute of it",
    "Boring and far too long.",
    "What an ending \u2014 I did not see that coming!",
    "The soundtrack gave me chills \U0001f3b5",
    "Scary but brilliant.",
    "Meh. The book was better.",
]
TARGETS = ["poster", "trailer", "play", "details", "similar", "recommendation"]


def synthetic_event(rng: random.Random, now: datetime) -> dict[str, Any]:
    kind = rng.choices(["watch", "rate", "comment", "click"], weights=[4, 2, 1, 3])[0]
    payload: dict[str, Any]
    if kind == "watch":
        duration = rng.randint(80, 180) * 60
        payload = {"position_seconds": rng.randint(0, duration), "duration_seconds": duration}
    elif kind == "rate":
        payload = {"rating": rng.randint(1, 10) / 2}
    elif kind == "comment":
        payload = {"text": rng.choice(COMMENTS)}
    else:
        payload = {"target": rng.choice(TARGETS)}
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": kind,
        "user_id": f"demo-user-{rng.randint(1, 200)}",
        "movie_id": rng.choice(MOVIES),
        "occurred_at": (now - timedelta(seconds=rng.randint(0, 600))).isoformat(),
        "session_id": f"s-{rng.randint(1, 1000)}",
        "payload": payload,
    }


@dataclass
class SendResult:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    unavailable: int = 0
    seconds: float = 0.0
    accepted_ids: list[str] = field(default_factory=list)


def send_events(
    gateway_url: str,
    write_key: str,
    count: int,
    *,
    batch_size: int = 100,
    rate_per_s: float = 2000.0,
    seed: int = 42,
) -> SendResult:
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    result = SendResult()
    started = time.monotonic()
    next_report = 0.0
    with httpx.Client(base_url=gateway_url, headers={"X-Write-Key": write_key}, timeout=30) as http:
        while result.sent < count:
            now = datetime.now(UTC)
            batch = [synthetic_event(rng, now) for _ in range(min(batch_size, count - result.sent))]
            r = http.post("/api/events/batch", json=batch)
            if r.status_code not in (202, 422, 503):
                raise RuntimeError(f"gateway answered {r.status_code}: {r.text[:300]}")
            body = r.json()
            result.sent += len(batch)
            for item in body["results"]:
                if item["status"] == "accepted":
                    result.accepted += 1
                    result.accepted_ids.append(item["event_id"])
                elif item["status"] == "rejected":
                    result.rejected += 1
                else:
                    result.unavailable += 1
            # steady rate: sleep until this many events are due
            due = started + result.sent / rate_per_s
            time.sleep(max(0.0, due - time.monotonic()))
            elapsed = time.monotonic() - started
            if elapsed >= next_report or result.sent == count:
                pct = 100 * result.sent / count
                print(
                    f"\r  sent {result.sent}/{count} ({pct:3.0f}%), acknowledged "
                    f"{result.accepted}, {result.sent / max(elapsed, 1e-9):,.0f} events/s",
                    end="" if result.sent < count else "\n",
                    file=sys.stderr,
                    flush=True,
                )
                next_report = elapsed + 0.5
    result.seconds = time.monotonic() - started
    return result


def count_archived(mongo: MongoSettings, event_ids: list[str]) -> int:
    """How many of ``event_ids`` have a document in ``raw.user_logs``."""
    found = 0
    with make_client(mongo) as client:
        coll = client[mongo.database]["user_logs"]
        for i in range(0, len(event_ids), 1000):
            chunk = event_ids[i : i + 1000]
            found += len(coll.distinct("event_id", {"event_id": {"$in": chunk}}))
    return found


def wait_for(count: Callable[[], int], total: int, timeout_s: float) -> tuple[int, float]:
    """Poll ``count()`` each second until it reaches ``total`` (or the timeout); returns
    (the last count, seconds waited)."""
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < timeout_s:
        n = count()
        if n >= total:
            break
        time.sleep(1.0)
    return n, time.monotonic() - started


def wait_archived(
    mongo: MongoSettings, event_ids: list[str], timeout_s: float = 120.0
) -> tuple[int, float]:
    """Wait until every id is archived (or the timeout); returns (archived, seconds)."""
    return wait_for(lambda: count_archived(mongo, event_ids), len(event_ids), timeout_s)


def count_modelled(dsn: str, event_ids: list[str]) -> int:
    """How many of the ids are facts in the star schema (any of the four fact tables)."""
    import psycopg

    union = " UNION ALL ".join(
        f"SELECT event_id FROM {t} WHERE event_id = ANY(%(ids)s::uuid[])"
        for t in ("fact_watch", "fact_rating", "fact_comment", "fact_click")
    )
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM ({union}) AS f", {"ids": event_ids}).fetchone()
    return int(row[0]) if row else 0


def wait_modelled(dsn: str, event_ids: list[str], timeout_s: float = 180.0) -> tuple[int, float]:
    """Wait until every id is a fact (or the timeout); returns (modelled, seconds)."""
    return wait_for(lambda: count_modelled(dsn, event_ids), len(event_ids), timeout_s)
