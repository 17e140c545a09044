"""Synthetic frontend events through the real gateway, then a count of where they landed.

A small, seeded generator (users, movies, every event type) for demos when no data set is
at hand (:mod:`cinepulse_devstack.replay` turns MovieLens into events when it is); events go
out in batches at a steady rate, with a progress bar on stderr. The counts say what the
gateway acknowledged, what the archiver has in MongoDB and what Spark made facts of.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from tqdm import tqdm

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


def synthetic_events(count: int, seed: int = 42) -> list[dict[str, Any]]:
    """``count`` seeded synthetic events (every type), stamped within the last 10 minutes."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    now = datetime.now(UTC)
    return [synthetic_event(rng, now) for _ in range(count)]


@dataclass
class SendResult:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    unavailable: int = 0
    #: items answered 503 and sent again (a frontend retries what was not acknowledged)
    retried: int = 0
    seconds: float = 0.0
    accepted_ids: list[str] = field(default_factory=list)
    #: the first few rejections: (event id, the gateway's reason)
    rejections: list[tuple[str, str]] = field(default_factory=list)


def send_events(
    gateway_url: str,
    write_key: str,
    events: Sequence[dict[str, Any]],
    *,
    batch_size: int = 100,
    rate_per_s: float = 2000.0,
    retries: int = 5,
    progress: bool = True,
) -> SendResult:
    """POST ``events`` to ``/api/events/batch`` in batches at a steady rate, with a progress
    bar on stderr. Items the gateway could not acknowledge (503: Kafka unavailable) are sent
    again with backoff, up to ``retries`` times, as a frontend would; what is still not
    acknowledged is counted as ``unavailable``."""
    result = SendResult()
    started = time.monotonic()
    bar = tqdm(
        total=len(events),
        unit="ev",
        desc="events",
        file=sys.stderr,
        disable=not progress,
        mininterval=0.5,
        dynamic_ncols=True,
    )
    with (
        httpx.Client(base_url=gateway_url, headers={"X-Write-Key": write_key}, timeout=30) as http,
        bar,
    ):
        for start in range(0, len(events), batch_size):
            batch = list(events[start : start + batch_size])
            result.sent += len(batch)
            for attempt in range(retries + 1):
                r = http.post("/api/events/batch", json=batch)
                if r.status_code == 429 and attempt < retries:  # over this client's rate
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                    continue
                if r.status_code not in (202, 422, 503):
                    raise RuntimeError(f"gateway answered {r.status_code}: {r.text[:300]}")
                again = []
                for event, item in zip(batch, r.json()["results"], strict=True):
                    if item["status"] == "accepted":
                        result.accepted += 1
                        result.accepted_ids.append(item["event_id"])
                    elif item["status"] == "rejected":
                        result.rejected += 1
                        if len(result.rejections) < 5:
                            result.rejections.append((str(item.get("event_id")), str(item)))
                    else:
                        again.append(event)
                if not again:
                    break
                if attempt == retries:
                    result.unavailable += len(again)
                    break
                result.retried += len(again)
                batch = again
                time.sleep(min(0.25 * 2**attempt, 5.0))
            bar.update(min(batch_size, len(events) - start))
            bar.set_postfix(acked=result.accepted, rejected=result.rejected, refresh=False)
            # steady rate: sleep until this many events are due
            due = started + result.sent / rate_per_s
            time.sleep(max(0.0, due - time.monotonic()))
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
