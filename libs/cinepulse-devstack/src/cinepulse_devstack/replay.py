"""MovieLens as frontend events: every rating a ``rate`` event, every tag a ``comment``,
replayed through the real gateway by the demo.

The MovieLens history (1996-2018) is replayed *as of now*: event times keep their order and
relative spacing, squeezed into the last ``span_days`` days, so the API's day and week
windows and the explorer's trends have something to show. Each user keeps their own order,
which the recommender's per-user time split relies on. Event ids are UUID v5 of the
MovieLens row, so replaying twice adds no fact twice (the pipeline drops duplicates).

Only movies of the TMDB 3,000-movie set are kept (those the demo loads), as in
:mod:`cinepulse_devstack.movielens`.
"""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cinepulse_common.paths import dataset_dir
from cinepulse_common.warehouse import EVENT_COLUMNS
from cinepulse_devstack.movielens import MOVIELENS_NAMESPACE, USER_PREFIX, read_movielens
from cinepulse_devstack.tmdb_offline import require_dataset

Event = dict[str, Any]


def _squeeze(times: list[int], now: datetime, span_days: float) -> list[datetime]:
    """Map epoch seconds onto [now - span, now], keeping order and relative spacing."""
    if not times:
        return []
    lo, hi = min(times), max(times)
    span = timedelta(days=span_days)
    start = now - span
    width = max(hi - lo, 1)
    return [start + span * ((t - lo) / width) for t in times]


def movielens_events(
    root: Path | None = None,
    *,
    now: datetime | None = None,
    span_days: float = 28.0,
    users: int | None = None,
) -> list[Event]:
    """The ratings and tags of the TMDB set's movies, as gateway envelopes in time order.

    ``users=N`` keeps the first N MovieLens users (whole histories: a smaller, still real
    slice). Raises :class:`~cinepulse_devstack.tmdb_offline.DatasetMissingError` when a file
    is missing."""
    tags = (root / "movielens-small" if root else dataset_dir("movielens-small")) / "tags.csv"
    now = now or datetime.now(UTC)
    data = read_movielens(root, users=users)
    raw: list[tuple[int, Event]] = []
    for row in data.ratings:  # EVENT_COLUMNS tuples of the warehouse loader
        v = dict(zip(EVENT_COLUMNS, row, strict=True))
        raw.append(
            (
                int(v["occurred_at"].timestamp()),
                {
                    "event_id": str(v["event_id"]),
                    "event_type": "rate",
                    "user_id": v["user_id"],
                    "movie_id": v["movie_id"],
                    "payload": {"rating": float(v["rating"])},
                },
            )
        )
    with require_dataset(tags).open(newline="", encoding="utf-8") as f:
        for tag in csv.DictReader(f):
            user = int(tag["userId"])
            tmdb_id = data.links.get(int(tag["movieId"]))
            text = tag["tag"].strip()
            if tmdb_id is None or not text or (users is not None and user > users):
                continue
            key = f"tags:{user}:{tmdb_id}:{tag['timestamp']}:{text}"
            raw.append(
                (
                    int(tag["timestamp"]),
                    {
                        "event_id": str(uuid.uuid5(MOVIELENS_NAMESPACE, key)),
                        "event_type": "comment",
                        "user_id": f"{USER_PREFIX}{user}",
                        "movie_id": tmdb_id,
                        "payload": {"text": text},
                    },
                )
            )
    raw.sort(key=lambda te: te[0])
    times = _squeeze([t for t, _ in raw], now, span_days)
    events = []
    for at, (_, event) in zip(times, raw, strict=True):
        event["occurred_at"] = at.isoformat()
        events.append(event)
    return events
