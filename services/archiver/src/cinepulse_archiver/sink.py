"""Write documents to MongoDB idempotently, retrying until they are stored."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from bson.errors import InvalidDocument
from pymongo import ASCENDING, AsyncMongoClient, UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from cinepulse_archiver import metrics
from cinepulse_archiver.continuity import Gap, first_gap, position_gap
from cinepulse_archiver.documents import MOVIES, USER_LOGS
from cinepulse_common.logging import get_logger
from cinepulse_common.settings import MongoSettings

log = get_logger(__name__)

DUPLICATE_KEY = 11000
#: one small document per source partition: the next offset to archive (every offset below
#: it is archived or dead-lettered). The first-seen probe reads it instead of looking up the
#: offsets before the first record in the archive, which FerretDB answers by scanning the
#: whole collection (its SQLite backend uses no index for ``_id``): a cost that grew with
#: everything archived before, and stalled the archiver for minutes after a restart.
POSITIONS = "archiver_positions"

#: MongoDB error codes that say the *document* is wrong (FerretDB answers an invalid key with
#: 2): only these are dead-lettered. Every other write error - a transient one (not primary,
#: shutting down, network, timeouts: pymongo's retryable codes), a write-concern error or a
#: code not listed here - is retried with backoff and stalls the batch: the offsets are not
#: committed until MongoDB stores the document, so a server-side fault never loses a record.
INVALID_DOCUMENT_CODES = frozenset(
    {
        2,  # BadValue (FerretDB: a key starting with '$', ...)
        9,  # FailedToParse
        14,  # TypeMismatch
        22,  # InvalidBSON
        52,  # DollarPrefixedFieldName
        53,  # InvalidIdField
        55,  # InvalidDBRef
        56,  # EmptyFieldName
        57,  # DottedFieldName
        121,  # DocumentValidationFailure
        10334,  # BSONObjectTooLarge
        17419,  # document too large once its _id is added
        17420,
    }
)

#: the outcome of one write error: already stored, retry it, or dead-letter it
DUPLICATE, RETRY, INVALID = "duplicate", "retry", "invalid"


def classify_write_error(error: Mapping[str, Any]) -> str:
    """What to do with one entry of a ``BulkWriteError``'s ``writeErrors``: the duplicate key
    of a redelivery is already stored, a document MongoDB calls invalid is dead-lettered,
    anything else (transient, or unknown) is retried."""
    code = error.get("code")
    if code == DUPLICATE_KEY:
        return DUPLICATE
    labels = error.get("errorLabels") or ()
    if "RetryableWriteError" in labels or "TransientTransactionError" in labels:
        return RETRY
    if code in INVALID_DOCUMENT_CODES:
        return INVALID
    return RETRY


def sort_bulk_error(
    details: Mapping[str, Any], n: int
) -> tuple[int, list[int], list[tuple[int, str]]]:
    """A ``BulkWriteError`` of an unordered insert of ``n`` documents, sorted out:
    ``(duplicates, indexes to write again, (index, reason) refused)``. With a write-concern
    error nothing of the attempt is known to be durable: every document not refused is
    written again (the ones stored answer with a duplicate key next time)."""
    dups = 0
    again: list[int] = []
    refused: list[tuple[int, str]] = []
    for e in details.get("writeErrors", []):
        kind = classify_write_error(e)
        if kind == DUPLICATE:
            dups += 1
        elif kind == INVALID:
            refused.append((int(e["index"]), f"MongoDB refused it: {e.get('errmsg')}"))
        else:
            again.append(int(e["index"]))
    if details.get("writeConcernErrors"):
        bad = {i for i, _ in refused}
        again = [i for i in range(n) if i not in bad]
    return dups, sorted(set(again)), refused


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

    async def save_positions(self, next_offsets: dict[tuple[str, int], int]) -> None:
        """Record, per partition, that every offset below ``next_offsets[tp]`` is archived
        (monotonic: ``$max``; one round trip)."""
        if not next_offsets:
            return
        ops = [
            UpdateOne(
                {"_id": f"{topic}:{partition}"},
                {"$max": {"next": n}, "$set": {"topic": topic, "partition": partition}},
                upsert=True,
            )
            for (topic, partition), n in sorted(next_offsets.items())
        ]
        await self._retry(
            "save the archived positions",
            lambda: self.db[POSITIONS].bulk_write(ops, ordered=False),
        )

    async def saved_position(self, topic: str, partition: int) -> int | None:
        """The next offset to archive of ``topic[partition]``, if recorded."""
        doc = await self._retry(
            "read the archived position",
            lambda: self.db[POSITIONS].find_one({"_id": f"{topic}:{partition}"}),
        )
        return None if doc is None else int(doc["next"])

    async def probe_gap(
        self, collection: str, topic: str, partition: int, offset: int, window: int
    ) -> Gap | None:
        """The gap before ``offset``, the first offset a worker sees of ``topic[partition]``:
        from the partition's saved position (one small document, whatever the size of the
        archive), or, for an archive written before positions were saved, from the documents
        of the ``window`` offsets before it (a whole-collection scan on FerretDB; once per
        partition: the batch then saves its position)."""
        saved = await self.saved_position(topic, partition)
        if saved is not None:
            return position_gap(offset, saved)
        window_start = max(0, offset - window)
        log.info(
            "no saved position: probing the archive for the offsets before the first record",
            topic=topic,
            partition=partition,
            offset=offset,
        )
        archived = await self.offsets(collection, topic, partition, window_start, offset)
        return first_gap(offset, window_start, archived)

    async def ping(self) -> None:
        await self.db.command("ping")

    async def _retry(self, what: str, op: Any, on_error: Callable[[], None] | None = None) -> Any:
        """``op()`` until it succeeds, with backoff on every :class:`PyMongoError` but a
        ``BulkWriteError`` (raised: the caller sorts it out). ``on_error`` is called on each
        failure retried here: an attempt that failed (a network error, a timeout) may still
        have written. A client-side ``InvalidDocument`` (``DocumentTooLarge`` too) is not a
        ``PyMongoError``: it is raised, retrying it cannot help."""
        delay = 0.2
        while True:
            try:
                return await op()
            except BulkWriteError:
                raise
            except PyMongoError as exc:
                if on_error is not None:
                    on_error()
                metrics.MONGO_ERRORS.labels(type(exc).__name__).inc()
                log.warning(
                    "MongoDB write failed; retrying", what=what, error=str(exc)[:300], in_s=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)

    async def write(self, docs: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, str]]:
        """Insert every document not yet stored. Returns ``(index, reason)`` for documents
        MongoDB refused as invalid or pymongo cannot send (``InvalidDocument``,
        ``DocumentTooLarge``): they go to the dead-letter topic. Every other failure
        (the server unreachable, not primary, a timeout, a write-concern error, a write
        error of unknown kind) is retried with backoff until it succeeds: this only returns
        once every other document is stored, and until then the batch's offsets stay
        uncommitted."""
        by_collection: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for i, (collection, doc) in enumerate(docs):
            by_collection[collection].append((i, doc))
        refused: list[tuple[int, str]] = []
        for collection, items in by_collection.items():
            refused.extend(await self._write_collection(collection, items))
        return refused

    async def _write_collection(
        self, collection: str, items: list[tuple[int, dict[str, Any]]], retried: bool = False
    ) -> list[tuple[int, str]]:
        coll = self.db[collection]
        refused: list[tuple[int, str]] = []
        pending = items
        delay = 0.2

        def attempt_failed() -> None:
            # a duplicate after a retry is this batch's own earlier write: set whenever an
            # earlier attempt could have written (a network error or timeout too)
            nonlocal retried
            retried = True

        while pending:
            batch = [d for _, d in pending]
            try:
                result = await self._retry(
                    f"insert into {collection}",
                    lambda c=coll, b=batch: c.insert_many(b, ordered=False),
                    on_error=attempt_failed,
                )
                metrics.WRITTEN.labels(collection).inc(len(result.inserted_ids))
                return refused
            except InvalidDocument as exc:
                # client side (pymongo cannot encode or send it, e.g. DocumentTooLarge):
                # retrying the same batch would fail forever. One document: dead-letter it;
                # more: the batches sent before the bad one may be stored, so write each
                # document alone (a duplicate then is this batch's own write)
                metrics.MONGO_ERRORS.labels(type(exc).__name__).inc()
                if len(pending) == 1:
                    refused.append((pending[0][0], f"cannot be sent to MongoDB: {str(exc)[:300]}"))
                    return refused
                log.warning(
                    "a document cannot be sent to MongoDB; writing the batch one by one",
                    collection=collection,
                    documents=len(pending),
                    error=str(exc)[:300],
                )
                for item in pending:
                    refused.extend(await self._write_collection(collection, [item], True))
                return refused
            except BulkWriteError as exc:
                dups, again, bad = sort_bulk_error(exc.details, len(pending))
                (metrics.WRITTEN if retried else metrics.DUPLICATES).labels(collection).inc(dups)
                metrics.WRITTEN.labels(collection).inc(exc.details.get("nInserted", 0))
                refused.extend((pending[i][0], reason) for i, reason in bad)
                if not again:
                    return refused
                error = (
                    "WriteConcernError"
                    if exc.details.get("writeConcernErrors")
                    else ("TransientWriteError")
                )
                metrics.MONGO_ERRORS.labels(error).inc()
                log.warning(
                    "MongoDB did not store every document; retrying them",
                    collection=collection,
                    error=error,
                    documents=len(again),
                    detail=str(
                        exc.details.get("writeConcernErrors") or exc.details.get("writeErrors")
                    )[:300],
                    in_s=delay,
                )
                pending = [pending[i] for i in again]
                retried = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
        return refused

    async def close(self) -> None:
        await self.client.close()
