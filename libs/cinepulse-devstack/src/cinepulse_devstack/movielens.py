"""MovieLens-small and the TMDB 3,000-movie set as warehouse rows, for tests, benchmarks and
the demo: real data through the real load step (:mod:`cinepulse_common.warehouse`).

* Movies: every row of ``tmdb-5000/tmdb_5000_movies.csv``, as the TMDB offline server would
  serve it, in :data:`~cinepulse_common.warehouse.MOVIE_COLUMNS` order (genres, keywords and
  production companies included, so the bridges fill).
* Ratings: every MovieLens rating whose movie ``links.csv`` maps to one of those TMDB ids
  (2,584 movies, 57,578 ratings), as a modelled ``rate`` event in
  :data:`~cinepulse_common.warehouse.EVENT_COLUMNS` order: user ``ml-<userId>``, the TMDB
  movie id, ``occurred_at`` = ``received_at`` = the rating's timestamp, and a deterministic
  ``event_id`` (UUID v5 of the MovieLens row), so loading twice writes nothing twice.
  ``source_topic`` is ``movielens.ratings`` with the CSV line as the offset.

``users=N`` keeps the first N MovieLens users (ids in numeric order): a smaller, still real
slice for quicker tests.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg

from cinepulse_common.paths import dataset_dir
from cinepulse_common.warehouse import EVENT_COLUMNS, MOVIE_COLUMNS, load_events, load_movies
from cinepulse_devstack.tmdb_offline import DatasetMissingError, json_list, require_dataset

#: namespace of the MovieLens events' ids (uuid5 of "ratings:<userId>:<movieId>:<timestamp>")
MOVIELENS_NAMESPACE = uuid.UUID("6f1c2a4e-2d0b-5a55-9f5e-6d6f7669656c")
RATINGS_TOPIC = "movielens.ratings"
USER_PREFIX = "ml-"


#: a data file is not where the data sets are looked for
MovieLensMissingError = DatasetMissingError


@dataclass
class MovieLens:
    """Rows ready for :func:`load_movielens` (and for anyone who wants them in memory)."""

    movies: list[tuple[Any, ...]] = field(default_factory=list)
    ratings: list[tuple[Any, ...]] = field(default_factory=list)
    #: MovieLens movieId -> TMDB id, for the movies kept
    links: dict[int, int] = field(default_factory=dict)

    @property
    def users(self) -> int:
        return len({r[EVENT_COLUMNS.index("user_id")] for r in self.ratings})


def _num(cell: str, kind: type[int] | type[float]) -> Any:
    text = cell.strip()
    if not text:
        return None
    value = kind(float(text))
    return value if value >= 0 else None


def _release(cell: str) -> date | None:
    try:
        return date.fromisoformat(cell.strip())
    except ValueError:
        return None


def movie_row(row: dict[str, str]) -> tuple[Any, ...]:
    """One ``tmdb_5000_movies.csv`` row in MOVIE_COLUMNS order."""
    named = [{"id": int(x["id"]), "name": x["name"]} for x in json_list(row["genres"])]
    keywords = [{"id": int(x["id"]), "name": x["name"]} for x in json_list(row["keywords"])]
    companies = [
        {"id": int(x["id"]), "name": x["name"], "origin_country": x.get("origin_country") or ""}
        for x in json_list(row["production_companies"])
    ]
    vote_average = _num(row["vote_average"], float)
    values: dict[str, Any] = {
        "movie_id": int(row["id"]),
        "imdb_id": None,
        "title": row["title"],
        "original_title": row["original_title"] or None,
        "original_language": row["original_language"] or None,
        "overview": row["overview"] or None,
        "tagline": row["tagline"] or None,
        "status": row["status"] or None,
        "release_date": _release(row["release_date"]),
        "runtime_minutes": _num(row["runtime"], int),
        "budget": _num(row["budget"], int),
        "revenue": _num(row["revenue"], int),
        "popularity": _num(row["popularity"], float),
        "vote_average": None if vote_average is None else min(vote_average, 10.0),
        "vote_count": _num(row["vote_count"], int),
        "adult": False,
        "fetched_at": None,  # the CSV has no fetch time: any fetched version replaces it
        "genres": json.dumps(named),
        "keywords": json.dumps(keywords),
        "companies": json.dumps(companies),
    }
    return tuple(values[c] for c in MOVIE_COLUMNS)


def rating_event(
    user: int, tmdb_id: int, rating: float, timestamp: int, line: int
) -> tuple[Any, ...]:
    """One MovieLens rating as a modelled ``rate`` event (EVENT_COLUMNS order)."""
    at = datetime.fromtimestamp(timestamp, UTC)
    values: dict[str, Any] = {
        "event_id": uuid.uuid5(MOVIELENS_NAMESPACE, f"ratings:{user}:{tmdb_id}:{timestamp}"),
        "event_type": "rate",
        "user_id": f"{USER_PREFIX}{user}",
        "movie_id": tmdb_id,
        "date_key": at.year * 10_000 + at.month * 100 + at.day,
        "occurred_at": at,
        "received_at": at,
        "session_id": None,
        "source_topic": RATINGS_TOPIC,
        "source_partition": 0,
        "source_offset": line,
        "payload": json.dumps({"rating": rating}),
        "rating": rating,
    }
    return tuple(values.get(c) for c in EVENT_COLUMNS)


def read_movielens(root: Path | None = None, *, users: int | None = None) -> MovieLens:
    """The TMDB movies and the MovieLens ratings of those movies (see the module doc)."""
    tmdb = root / "tmdb-5000" if root else dataset_dir("tmdb-5000")
    ml = root / "movielens-small" if root else dataset_dir("movielens-small")
    csv.field_size_limit(1 << 24)
    data = MovieLens()
    known: set[int] = set()
    with require_dataset(tmdb / "tmdb_5000_movies.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            movie_id = int(row["id"])
            if movie_id not in known:
                known.add(movie_id)
                data.movies.append(movie_row(row))
    with require_dataset(ml / "links.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["tmdbId"].strip() and int(row["tmdbId"]) in known:
                data.links[int(row["movieId"])] = int(row["tmdbId"])
    seen: set[tuple[int, int]] = set()
    with require_dataset(ml / "ratings.csv").open(newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            user = int(row["userId"])
            if users is not None and user > users:
                continue
            tmdb_id = data.links.get(int(row["movieId"]))
            # two MovieLens ids can map to one TMDB id: a user's first rating of it counts
            if tmdb_id is None or (user, tmdb_id) in seen:
                continue
            seen.add((user, tmdb_id))
            data.ratings.append(
                rating_event(user, tmdb_id, float(row["rating"]), int(row["timestamp"]), line)
            )
    return data


def load_movielens(
    conn: psycopg.Connection[Any],
    data: MovieLens,
    *,
    source_flag: str = "movielens",
    batch: int = 20_000,
) -> dict[str, int]:
    """Movies then ratings through the shared load step, in the caller's transaction;
    returns the rows inserted per table (a second load inserts no events)."""
    written: dict[str, int] = {}

    def add(counts: dict[str, int]) -> None:
        for table, n in counts.items():
            written[table] = written.get(table, 0) + n

    add(load_movies(conn, data.movies, source_flag=source_flag))
    events: Sequence[tuple[Any, ...]] = data.ratings
    for start in range(0, len(events), batch):
        add(load_events(conn, events[start : start + batch], source_flag=source_flag))
    return written
