"""Write documents to MongoDB idempotently, retrying until they are stored.

What a failed write means:

* a **duplicate key** (11000): the document is already stored (a redelivery): done;
* an **invalid document**: one of :data:`INVALID_DOCUMENT_CODES` from the server (FerretDB
  answers ``BadValue`` for a ``$`` key), or a document pymongo cannot send
  (``InvalidDocument``, ``DocumentTooLarge``): returned to the caller, which dead-letters it;
* **anything else** is transient: the server unreachable or timing out (``AutoReconnect``,
  ``NotPrimaryError``, ``NetworkTimeout``, ``ServerSelectionTimeoutError``), a write error with
  a retryable code or a code the archiver does not know, and a **write-concern error** (nothing
  of that attempt is known to be durable: every document not refused is written again; the
  ones already stored answer with a duplicate key). It is retried with exponential backoff,
  for as long as it takes, and until then the call does not return: the caller's batch is
  not acked, so faust commits none of its offsets.

A retry gives way only when the worker must let go of the batch: the ``should_yield``
callable answers a reason (a consumer-group rebalance, the worker stopping). Then
:class:`WriteInterrupted` is raised at once (the backoff is waited in short steps, an attempt
in flight after a failure is cancelled), so faust's rebalance, which waits for the agent to
finish its batch, is never held by a MongoDB outage. The caller gives the batch back
unacknowledged (:mod:`cinepulse_archiver.agents`).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

import pymongo
from bson.errors import InvalidDocument
from pymongo import ASCENDING, AsyncMongoClient, UpdateOne
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError

from cinepulse_archiver import metrics
from cinepulse_archiver.documents import MOVIES, USER_LOGS
from cinepulse_common.logging import get_logger
from cinepulse_common.settings import MongoSettings

log = get_logger(__name__)

DUPLICATE_KEY = 11000

#: MongoDB error codes that say the *document* is wrong: only these are dead-lettered. Every
#: other write error is retried (see the module's docstring).
INVALID_DOCUMENT_CODES = frozenset(
    {
        2,  # BadValue (FerretDB: a key starting with '$' or holding '.', ...)
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
#: error labels that make any write error transient, whatever its code
RETRYABLE_LABELS = frozenset({"RetryableWriteError", "TransientTransactionError"})

#: the outcome of one write error: already stored, retry it, or dead-letter it
DUPLICATE, RETRY, INVALID = "duplicate", "retry", "invalid"

#: the first pause before a retry (doubled after each failure up to ``retry_max_s``)
FIRST_DELAY_S = 0.2
#: one small document per source partition (``_id`` ``<topic>:<partition>``, ``next``: the
#: offset after everything archived): what the first-seen probe reads, in one lookup whatever
#: the archive's size (FerretDB scans a collection even for a lookup by ``_id``)
POSITIONS = "archiver_positions"
#: an index build's own deadline (a build on a large collection outlasts one operation's)
INDEX_BUILD_TIMEOUT_S = 3600.0
#: how often a pause or an attempt in flight asks ``should_yield``
YIELD_POLL_S = 0.25


class WriteInterrupted(Exception):
    """MongoDB has not stored the batch and the worker must let go of it (``reason``: a
    rebalance, a stop). Nothing of the batch may be acknowledged."""

    def __init__(self, reason: str, what: str) -> None:
        super().__init__(f"{what}: retries given up ({reason})")
        self.reason = reason


def classify_write_error(error: Mapping[str, Any]) -> str:
    """What to do with one entry of a ``BulkWriteError``'s ``writeErrors``: the duplicate key
    of a redelivery is already stored, a document MongoDB calls invalid is dead-lettered,
    anything else (transient, or unknown) is retried."""
    code = error.get("code")
    if code == DUPLICATE_KEY:
        return DUPLICATE
    if RETRYABLE_LABELS & set(error.get("errorLabels") or ()):
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
    written again."""
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
        return dups, [i for i in range(n) if i not in bad], refused
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


def _never() -> str | None:
    return None


class MongoSink:
    def __init__(
        self,
        settings: MongoSettings,
        retry_max_s: float = 30.0,
        should_yield: Callable[[], str | None] = _never,
        op_timeout_s: float | None = None,
    ) -> None:
        # timeoutMS bounds each attempt (pymongo's client-side operation timeout): without
        # it, an insert the server never answers would wait for ever, retried never
        timeout: dict[str, Any] = {"timeoutMS": round(op_timeout_s * 1000)} if op_timeout_s else {}
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.url.get_secret_value(),
            serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
            tz_aware=True,
            **timeout,
        )
        self.db = self.client[settings.database]
        self.retry_max_s = retry_max_s
        self.should_yield = should_yield
        #: the last attempt failed (an outage): the next one gives way to a rebalance too
        self.failing = False

    async def ensure_indexes(self) -> None:
        for collection, indexes in INDEXES.items():
            for name, keys in indexes:

                async def create(
                    collection: str = collection,
                    name: str = name,
                    keys: list[tuple[str, int]] = keys,
                ) -> None:
                    # an index built on a large collection may take longer than one
                    # operation's timeoutMS (sent to mongod as maxTimeMS): its own bound
                    with pymongo.timeout(INDEX_BUILD_TIMEOUT_S):
                        await self.db[collection].create_index(keys, name=name)

                await self._retry(
                    "create_index",
                    f"create index {collection}.{name}",
                    create,
                    interruptible=False,  # a task of its own: nothing to give back
                )

    async def position(self, topic: str, partition: int) -> int | None:
        """The next offset after everything archived of ``topic[partition]`` (its position
        document), or None when no position was ever saved for it."""
        doc = await self._retry(
            "lookup",
            "look up a partition's archived position",
            partial(self.db[POSITIONS].find_one, {"_id": f"{topic}:{partition}"}),
        )
        return None if doc is None else int(doc["next"])

    async def save_positions(self, nexts: Mapping[tuple[str, int], int]) -> None:
        """Raise each partition's position to ``next`` (``$max``: a worker behind another,
        around a rebalance, never moves it back), in one unordered bulk write per batch;
        retried like the documents' writes, so a batch is acked only once they are saved."""
        if not nexts:
            return
        updates = [
            UpdateOne({"_id": f"{topic}:{partition}"}, {"$max": {"next": offset}}, upsert=True)
            for (topic, partition), offset in sorted(nexts.items())
        ]

        async def write() -> None:
            try:
                await self.db[POSITIONS].bulk_write(updates, ordered=False)
            except BulkWriteError as exc:  # e.g. two upserts racing: the next attempt matches
                raise OperationFailure(f"positions not saved: {exc.details}") from exc

        await self._retry("write", "save the partitions' archived positions", write)

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
                "lookup",
                f"look up {collection} positions",
                partial(self._find_ids, collection, chunk),
            )
            found.extend(int(d["offset"]) for d in cursor)
        return found

    async def _find_ids(self, collection: str, ids: list[str]) -> list[dict[str, Any]]:
        return await (
            self.db[collection].find({"_id": {"$in": ids}}, projection={"offset": 1}).to_list(None)
        )

    async def ping(self) -> None:
        await self.db.command("ping")

    # ------------------------------------------------------------------ retrying

    def _check_yield(self, what: str) -> None:
        reason = self.should_yield()
        if reason:
            raise WriteInterrupted(reason, what)

    async def _pause(self, seconds: float, what: str) -> None:
        """Sleep ``seconds`` in short steps, raising :class:`WriteInterrupted` as soon as the
        worker must let go."""
        deadline = time.monotonic() + seconds
        while True:
            self._check_yield(what)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, YIELD_POLL_S))

    async def _attempt(self, op: Callable[[], Awaitable[Any]], what: str, retrying: bool) -> Any:
        """``await op()``. After a failure (``retrying``, or the sink's last attempt failed)
        the attempt is cancelled as soon as the worker must let go, not awaited to its
        timeout; a healthy write in flight is never cut short."""
        if not (retrying or self.failing):
            result = await op()
        else:
            task = asyncio.ensure_future(op())
            try:
                while True:
                    done, _ = await asyncio.wait({task}, timeout=YIELD_POLL_S)
                    if done:
                        break
                    self._check_yield(what)
            finally:
                if not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            result = task.result()
        self.failing = False
        return result

    def _failed(self, operation: str, what: str, error: str, detail: str, delay: float) -> None:
        self.failing = True
        metrics.MONGO_ERRORS.labels(error).inc()
        metrics.MONGO_RETRIES.labels(operation).inc()
        log.warning(
            "MongoDB operation failed; retrying",
            what=what,
            error=error,
            detail=detail[:300],
            in_s=round(delay, 2),
        )

    async def _retry(
        self,
        operation: str,
        what: str,
        op: Callable[[], Awaitable[Any]],
        interruptible: bool = True,
    ) -> Any:
        """``op()`` until it succeeds, with backoff on every :class:`PyMongoError` but a
        ``BulkWriteError`` (raised: the caller sorts it out). A client-side
        ``InvalidDocument`` (``DocumentTooLarge`` too) is not a ``PyMongoError``: it is
        raised, retrying it cannot help."""
        delay = FIRST_DELAY_S
        retrying = False
        while True:
            try:
                if interruptible:
                    return await self._attempt(op, what, retrying)
                result = await op()
                self.failing = False
                return result
            except BulkWriteError:
                raise
            except PyMongoError as exc:
                self._failed(operation, what, type(exc).__name__, str(exc), delay)
            retrying = True
            if interruptible:
                await self._pause(delay, what)
            else:
                await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max_s)

    # ------------------------------------------------------------------ writing

    async def write(self, docs: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, str]]:
        """Insert every document not yet stored. Returns ``(index, reason)`` for documents
        MongoDB refused as invalid or pymongo cannot send: they go to the dead-letter topic.
        Every other failure is retried with backoff until it succeeds: this only returns once
        every other document is stored (or raises :class:`WriteInterrupted`)."""
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
        """``retried``: an earlier attempt may have written some of ``items``, so a duplicate
        key is this write's own document (counted as written), not a redelivery."""
        coll = self.db[collection]
        what = f"insert into {collection}"
        refused: list[tuple[int, str]] = []
        pending = items
        delay = FIRST_DELAY_S
        retrying = False
        while pending:
            batch = [d for _, d in pending]
            try:
                result = await self._attempt(
                    partial(coll.insert_many, batch, ordered=False), what, retrying
                )
                metrics.WRITTEN.labels(collection).inc(len(result.inserted_ids))
                return refused
            except InvalidDocument as exc:
                # client side (pymongo cannot encode or send it, e.g. DocumentTooLarge):
                # retrying the same batch would fail forever. One document: dead-letter it;
                # more: the batches sent before the bad one may be stored, so write each
                # document alone (a duplicate then is this write's own)
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
                self.failing = False  # it reached the server; a retried error says otherwise
                dups, again, bad = sort_bulk_error(exc.details, len(pending))
                wce = exc.details.get("writeConcernErrors")
                (metrics.WRITTEN if retried else metrics.DUPLICATES).labels(collection).inc(dups)
                if not wce:  # else not known to be durable: counted when written again
                    metrics.WRITTEN.labels(collection).inc(exc.details.get("nInserted", 0))
                refused.extend((pending[i][0], reason) for i, reason in bad)
                if not again:
                    return refused
                self._failed(
                    "insert",
                    what,
                    "WriteConcernError" if wce else "TransientWriteError",
                    str(wce or exc.details.get("writeErrors")),
                    delay,
                )
                pending = [pending[i] for i in again]
            except PyMongoError as exc:
                # the server unreachable, not primary, a timeout: the attempt may still have
                # written some documents (they answer with a duplicate key next time)
                self._failed("insert", what, type(exc).__name__, str(exc), delay)
            retried = retrying = True
            await self._pause(delay, what)
            delay = min(delay * 2, self.retry_max_s)
        return refused

    async def close(self) -> None:
        await self.client.close()
