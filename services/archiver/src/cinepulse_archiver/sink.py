"""Write documents to MongoDB idempotently, retrying until they are stored."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import BulkWriteError, PyMongoError

from cinepulse_archiver import metrics
from cinepulse_archiver.documents import MOVIES, USER_LOGS
from cinepulse_common.logging import get_logger
from cinepulse_common.settings import MongoSettings

log = get_logger(__name__)

DUPLICATE_KEY = 11000

INDEXES: dict[str, list[tuple[str, list[tuple[str, int]]]]] = {
    USER_LOGS: [
        ("event_id", [("event_id", ASCENDING)]),
        ("occurred_at", [("occurred_at", ASCENDING)]),
        ("received_at", [("received_at", ASCENDING)]),
        ("event_type_occurred_at", [("event_type", ASCENDING), ("occurred_at", ASCENDING)]),
    ],
    MOVIES: [("movie_id", [("movie_id", ASCENDING)])],
}


class MongoSink:
    def __init__(self, settings: MongoSettings, retry_max_s: float = 30.0) -> None:
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.url.get_secret_value(),
            serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
            tz_aware=True,
        )
        self.db = self.client[settings.database]
        self.retry_max_s = retry_max_s

    async def ensure_indexes(self) -> None:
        for collection, indexes in INDEXES.items():
            for name, keys in indexes:
                await self._retry(
                    f"create index {collection}.{name}",
                    lambda c=collection, k=keys, n=name: self.db[c].create_index(k, name=n),
                )

    async def offsets(
        self, collection: str, topic: str, partition: int, start: int, stop: int
    ) -> list[int]:
        """The offsets in ``[start, stop)`` of ``topic[partition]`` that have a document
        (looked up by ``_id``, the record's position)."""
        ids = [f"{topic}:{partition}:{o}" for o in range(start, stop)]
        found: list[int] = []
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            cursor = await self._retry(
                f"look up {collection} positions",
                lambda c=chunk: self.db[collection]
                .find({"_id": {"$in": c}}, projection={"offset": 1})
                .to_list(None),
            )
            found.extend(int(d["offset"]) for d in cursor)
        return found

    async def ping(self) -> None:
        await self.db.command("ping")

    async def _retry(self, what: str, op: Any) -> Any:
        delay = 0.2
        while True:
            try:
                return await op()
            except BulkWriteError:
                raise
            except PyMongoError as exc:
                metrics.MONGO_ERRORS.labels(type(exc).__name__).inc()
                log.warning(
                    "MongoDB write failed; retrying", what=what, error=str(exc)[:300], in_s=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)

    async def write(self, docs: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, str]]:
        """Insert every document not yet stored. Returns ``(index, reason)`` for documents
        MongoDB refused outright (not retriable: they go to the dead-letter topic).
        Transient failures are retried until they succeed: this only returns once every
        other document is stored."""
        by_collection: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for i, (collection, doc) in enumerate(docs):
            by_collection[collection].append((i, doc))
        refused: list[tuple[int, str]] = []
        for collection, items in by_collection.items():
            coll = self.db[collection]
            batch = [d for _, d in items]
            try:
                result = await self._retry(
                    f"insert into {collection}",
                    lambda c=coll, b=batch: c.insert_many(b, ordered=False),
                )
                metrics.WRITTEN.labels(collection).inc(len(result.inserted_ids))
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                dups = sum(1 for e in errors if e.get("code") == DUPLICATE_KEY)
                other = [e for e in errors if e.get("code") != DUPLICATE_KEY]
                metrics.DUPLICATES.labels(collection).inc(dups)
                metrics.WRITTEN.labels(collection).inc(exc.details.get("nInserted", 0))
                for e in other:
                    refused.append((items[e["index"]][0], f"MongoDB refused it: {e.get('errmsg')}"))
        return refused

    async def close(self) -> None:
        await self.client.close()
