"""Synthetic frontend events through the real gateway, then a count of where they landed.

A small, seeded generator (users, movies, every event type) for demos when no data set is
at hand (:mod:`cinepulse_devstack.replay` turns MovieLens into events when it is); events go
out in batches at a steady rate, with a progress bar on stderr. The counts say what the
gateway acknowledged, what the archiver has in MongoDB and what Spark made facts of.

The movies are those of the offline TMDB server's synthetic catalogue
(:func:`cinepulse_devstack.tmdb_offline.synthetic_rows`), so the demo loads the metadata of
every movie the events name. Each user has one or two favourite genres and mostly picks
popular movies of those (and rates them higher, and comments on them warmly): a pattern the
recommender can learn and beat popularity with.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import httpx
from tqdm import tqdm

from cinepulse_common.mongo import make_client
from cinepulse_common.settings import MongoSettings
from cinepulse_devstack.tmdb_offline.synthetic import GENRES, synthetic_rows

USERS = 200
#: how often a user picks a movie of a favourite genre rather than any popular one
TASTE = 0.8
POSITIVE_COMMENTS = [
    "Loved every minute of it",
    "What an ending \u2014 I did not see that coming!",
    "The soundtrack gave me chills \U0001f3b5",
    "Scary but brilliant.",
]
NEGATIVE_COMMENTS = [
    "Boring and far too long.",
    "Meh. The book was better.",
    "That ending made me so angry, what a waste of two hours.",
]
COMMENTS = POSITIVE_COMMENTS + NEGATIVE_COMMENTS
TARGETS = ["poster", "trailer", "play", "details", "similar", "recommendation"]


@dataclass(frozen=True)
class CatalogueMovie:
    id: int
    genres: frozenset[int]
    popularity: float


@cache
def catalogue_movies() -> tuple[CatalogueMovie, ...]:
    """The offline TMDB server's synthetic catalogue (default size and seed)."""
    return tuple(
        CatalogueMovie(
            int(row["id"]),
            frozenset(g["id"] for g in json.loads(row["genres"])),
            float(row["popularity"]),
        )
        for row in synthetic_rows()
    )


def synthetic_movie_ids() -> list[int]:
    """The synthetic catalogue's movie ids (those the synthetic events name)."""
    return [m.id for m in catalogue_movies()]


class _Picker:
    """Popularity-weighted draws from a list of movies."""

    def __init__(self, movies: Sequence[CatalogueMovie]) -> None:
        self.movies = list(movies)
        self.cumulative = list(itertools.accumulate(m.popularity for m in self.movies))

    def __call__(self, rng: random.Random) -> CatalogueMovie:
        x = rng.random() * self.cumulative[-1]
        return self.movies[min(bisect.bisect_right(self.cumulative, x), len(self.movies) - 1)]


class Tastes:
    """Each user's favourite genres and the movies they pick from (seeded)."""

    def __init__(self, rng: random.Random, users: int = USERS) -> None:
        movies = catalogue_movies()
        weight = {g: w for g, _, w in GENRES}
        genre_ids = sorted({g for m in movies for g in m.genres})
        weights = [weight[g] for g in genre_ids]
        self.favourites: dict[int, frozenset[int]] = {}
        for user in range(1, users + 1):
            liked: set[int] = set()
            wanted = rng.choice([1, 2])
            while len(liked) < wanted:
                liked.add(rng.choices(genre_ids, weights=weights)[0])
            self.favourites[user] = frozenset(liked)
        self.anything = _Picker(movies)
        self._pickers: dict[frozenset[int], _Picker] = {}

    def pick(self, rng: random.Random, user: int) -> tuple[CatalogueMovie, bool]:
        """A movie for ``user`` and whether it is of a favourite genre."""
        liked = self.favourites[user]
        if rng.random() < TASTE:
            picker = self._pickers.get(liked)
            if picker is None:
                fits = [m for m in self.anything.movies if m.genres & liked]
                picker = self._pickers[liked] = _Picker(fits or self.anything.movies)
            movie = picker(rng)
        else:
            movie = self.anything(rng)
        return movie, bool(movie.genres & liked)


def synthetic_event(rng: random.Random, now: datetime, tastes: Tastes) -> dict[str, Any]:
    kind = rng.choices(["watch", "rate", "comment", "click"], weights=[4, 2, 1, 3])[0]
    user = rng.randint(1, len(tastes.favourites))
    movie, liked = tastes.pick(rng, user)
    payload: dict[str, Any]
    if kind == "watch":
        duration = rng.randint(80, 180) * 60
        share = rng.uniform(0.6, 1.0) if liked else rng.uniform(0.0, 0.7)
        payload = {"position_seconds": int(duration * share), "duration_seconds": duration}
    elif kind == "rate":
        stars = rng.randint(7, 10) if liked else rng.randint(1, 7)
        payload = {"rating": stars / 2}
    elif kind == "comment":
        payload = {"text": rng.choice(POSITIVE_COMMENTS if liked else NEGATIVE_COMMENTS)}
    else:
        payload = {"target": rng.choice(TARGETS)}
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": kind,
        "user_id": f"demo-user-{user}",
        "movie_id": movie.id,
        "occurred_at": (now - timedelta(seconds=rng.randint(0, 600))).isoformat(),
        "session_id": f"s-{rng.randint(1, 1000)}",
        "payload": payload,
    }


def synthetic_events(count: int, seed: int = 42) -> list[dict[str, Any]]:
    """``count`` seeded synthetic events (every type) of :data:`USERS` users on the synthetic
    catalogue's movies, stamped within the last 10 minutes."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    now = datetime.now(UTC)
    tastes = Tastes(rng)
    return [synthetic_event(rng, now, tastes) for _ in range(count)]


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
