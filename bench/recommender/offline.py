"""The recommender's quality alone, without the stack (``python -m bench.recommender``):
MovieLens-small read straight from the dataset files into what the warehouse would hand the
trainer, every candidate trained and evaluated with the default settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np

from cinepulse_common.settings import PostgresSettings
from cinepulse_common.warehouse import EVENT_COLUMNS, MOVIE_COLUMNS
from cinepulse_devstack.movielens import read_movielens
from cinepulse_recommender.interactions import Events
from cinepulse_recommender.settings import RecommenderSettings
from cinepulse_recommender.training import stderr_progress, train_and_evaluate
from cinepulse_recommender.warehouse import Catalogue, WarehouseData


def movielens_data() -> WarehouseData:
    """MovieLens-small as the warehouse hands it to the trainer (the same events, catalogue
    and tags), read straight from the dataset files: no database needed."""
    ml = read_movielens()
    e = {c: EVENT_COLUMNS.index(c) for c in ("user_id", "movie_id", "rating", "occurred_at")}
    rows = ml.ratings
    events = Events(
        user_id=np.array([r[e["user_id"]] for r in rows], dtype=np.str_),
        movie_id=np.array([r[e["movie_id"]] for r in rows], dtype=np.int64),
        kind=np.array(["rate"] * len(rows), dtype=np.str_),
        value=np.array([r[e["rating"]] for r in rows], dtype=np.float64),
        completed=np.zeros(len(rows), dtype=bool),
        at=np.array([r[e["occurred_at"]].timestamp() for r in rows], dtype=np.float64),
    )
    c = {name: MOVIE_COLUMNS.index(name) for name in MOVIE_COLUMNS}
    titles: dict[int, str] = {}
    genres: dict[int, list[str]] = {}
    tags: list[tuple[int, str]] = []
    for m in ml.movies:
        movie = int(m[c["movie_id"]])
        titles[movie] = m[c["title"]]
        genres[movie] = [g["name"] for g in json.loads(m[c["genres"]])]
        tags += [(movie, f"genre:{g}") for g in genres[movie]]
        tags += [(movie, f"keyword:{x['id']}") for x in json.loads(m[c["keywords"]])]
        tags += [(movie, f"company:{x['id']}") for x in json.loads(m[c["companies"]])]
    ids = np.array(sorted(titles), dtype=np.int64)
    now = datetime.now(UTC)
    return WarehouseData(events, Catalogue(ids, titles, genres, tags), now, now)


def quality() -> None:
    """``python -m bench.recommender``: every candidate on MovieLens-small with the default
    settings and the trainer's own split (no database, no serving), one JSON line each."""
    settings = RecommenderSettings(postgres=PostgresSettings(dsn="postgresql://unused@x/x"))
    m = train_and_evaluate(movielens_data(), settings, stderr_progress).metrics(10)
    for name, r in m["candidates"].items():
        print(json.dumps({"candidate": name} | {k: v for k, v in r.items() if k != "params"}))
    print(json.dumps({"served": m["served"], "ratios": m["ratios"], "skipped": m["skipped"]}))
