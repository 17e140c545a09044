"""MongoDB ``movies`` and ``genres`` (the :class:`~cinepulse_tmdb_fetcher.ports.RawArchive`
port): TMDB's answers as they came, one document per distinct version."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import BulkWriteError

from cinepulse_common.mongo import make_client
from cinepulse_common.settings import MongoSettings
from cinepulse_tmdb_fetcher.ports import MovieVersion, SinkError

DUPLICATE_KEY = 11000  # MongoDB's code for an ``_id`` already there


class MongoRawArchive:
    def __init__(self, settings: MongoSettings) -> None:
        self.settings = settings

    def archive_movies(self, versions: Sequence[MovieVersion], run_id: str) -> None:
        # the _id holds the content hash: a version already archived (a rerun after a crash
        # between this write and stg_movies) is refused as a duplicate, which is no error
        docs = [
            {
                "_id": f"tmdb:{v.movie_id}:{v.content_hash[:16]}",
                "source": "tmdb-api",
                "movie_id": v.movie_id,
                "fetched_at": v.fetched_at,
                "content_hash": v.content_hash,
                "endpoint": f"/3/movie/{v.movie_id}?append_to_response=keywords,credits",
                "response": v.raw,
                "run_id": run_id,
            }
            for v in versions
        ]
        with make_client(self.settings) as client:
            try:
                client[self.settings.database]["movies"].insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                other = [
                    e for e in exc.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY
                ]
                if other:
                    raise SinkError(f"MongoDB refused movies: {other[0].get('errmsg')}") from None

    def archive_genres(self, body: dict[str, Any]) -> None:
        h = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with make_client(self.settings) as client:
            client[self.settings.database]["genres"].update_one(
                {"_id": f"tmdb-genres:{h[:16]}"},
                {"$setOnInsert": {"response": body, "fetched_at": datetime.now(UTC)}},
                upsert=True,
            )
