"""MongoDB write errors in the archiver's sink: which are retried, which dead-lettered
(real pymongo exception objects; no server: see tests/integration/test_archiver_mongo_errors)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson.errors import InvalidDocument
from pymongo.errors import AutoReconnect, BulkWriteError, DocumentTooLarge
from pymongo.results import InsertManyResult

from cinepulse_archiver import sink as sink_mod
from cinepulse_archiver.sink import (
    DUPLICATE,
    INVALID,
    RETRY,
    MongoSink,
    classify_write_error,
    sort_bulk_error,
)
from cinepulse_common.settings import MongoSettings

NOT_PRIMARY = 10107
SHUTDOWN = 91


def bulk_error(
    write_errors: list[dict[str, Any]], wce: list[dict[str, Any]] | None = None, n_inserted: int = 0
) -> BulkWriteError:
    return BulkWriteError(
        {
            "writeErrors": write_errors,
            "writeConcernErrors": wce or [],
            "nInserted": n_inserted,
            "nUpserted": 0,
            "nMatched": 0,
            "nModified": 0,
            "nRemoved": 0,
            "upserted": [],
        }
    )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"}, DUPLICATE),
        ({"index": 0, "code": 2, "errmsg": 'invalid key: "$bad"'}, INVALID),
        ({"index": 0, "code": 121, "errmsg": "Document failed validation"}, INVALID),
        ({"index": 0, "code": NOT_PRIMARY, "errmsg": "not primary"}, RETRY),
        ({"index": 0, "code": SHUTDOWN, "errmsg": "shutdown in progress"}, RETRY),
        ({"index": 0, "code": 89, "errmsg": "NetworkTimeout"}, RETRY),
        ({"index": 0, "code": 50, "errmsg": "operation exceeded time limit"}, RETRY),
        ({"index": 0, "code": 2, "errorLabels": ["RetryableWriteError"], "errmsg": "x"}, RETRY),
        ({"index": 0, "code": 424242, "errmsg": "never heard of it"}, RETRY),
    ],
)
def test_only_invalid_documents_are_refused(error: dict[str, Any], kind: str) -> None:
    assert classify_write_error(error) == kind


def test_a_write_concern_error_writes_every_document_again() -> None:
    exc = bulk_error(
        [{"index": 1, "code": 2, "errmsg": "invalid key"}],
        wce=[{"code": 64, "errmsg": "waiting for replication timed out"}],
        n_inserted=2,
    )
    dups, again, refused = sort_bulk_error(exc.details, 3)
    assert (dups, again) == (0, [0, 2])
    assert [i for i, _ in refused] == [1]


class FlakyCollection:
    """Answers ``insert_many`` with the queued errors first, then stores the documents."""

    def __init__(self, errors: list[BulkWriteError]) -> None:
        self.errors = errors
        self.calls: list[list[Any]] = []
        self.stored: dict[Any, dict[str, Any]] = {}

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool) -> InsertManyResult:
        self.calls.append([d["_id"] for d in docs])
        if self.errors:  # what the error says failed is not stored, the rest is
            exc = self.errors.pop(0)
            failed = {e["index"] for e in exc.details["writeErrors"]}
            self.stored.update({d["_id"]: d for i, d in enumerate(docs) if i not in failed})
            raise exc
        new = [d for d in docs if d["_id"] not in self.stored]
        self.stored.update({d["_id"]: d for d in new})
        return InsertManyResult([d["_id"] for d in new], acknowledged=True)


def flaky_sink(coll: FlakyCollection, monkeypatch: pytest.MonkeyPatch) -> MongoSink:
    s = MongoSink(MongoSettings(url="mongodb://127.0.0.1:1/", database="t"))
    s.db = {"user_logs": coll}

    async def no_sleep(_s: float) -> None:
        return None

    monkeypatch.setattr(sink_mod.asyncio, "sleep", no_sleep)
    return s


DOCS = [("user_logs", {"_id": f"t:0:{i}"}) for i in range(3)]


def test_transient_write_errors_are_retried_not_dead_lettered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coll = FlakyCollection(
        [
            bulk_error(
                [{"index": i, "code": NOT_PRIMARY, "errmsg": "not primary"} for i in (0, 2)]
            ),
            bulk_error([{"index": 0, "code": SHUTDOWN, "errmsg": "shutting down"}]),
        ]
    )
    refused = asyncio.run(flaky_sink(coll, monkeypatch).write(DOCS))
    assert refused == []
    assert coll.calls == [["t:0:0", "t:0:1", "t:0:2"], ["t:0:0", "t:0:2"], ["t:0:0"]]
    assert set(coll.stored) == {"t:0:0", "t:0:1", "t:0:2"}


def test_a_write_concern_error_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    coll = FlakyCollection([bulk_error([], wce=[{"code": 64, "errmsg": "wtimeout"}], n_inserted=3)])
    refused = asyncio.run(flaky_sink(coll, monkeypatch).write(DOCS))
    assert refused == []
    assert len(coll.calls) == 2  # written again, not taken as stored
    assert set(coll.stored) == {"t:0:0", "t:0:1", "t:0:2"}


def test_an_invalid_document_is_still_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    coll = FlakyCollection(
        [bulk_error([{"index": 1, "code": 2, "errmsg": "invalid key"}], n_inserted=2)]
    )
    refused = asyncio.run(flaky_sink(coll, monkeypatch).write(DOCS))
    assert [i for i, _ in refused] == [1]
    assert len(coll.calls) == 1


def count(counter: Any, collection: str = "user_logs") -> float:
    return float(counter.labels(collection)._value.get())


class ScriptedCollection:
    """A collection that stores what it is sent, with ``fail(docs)`` deciding an error to
    raise after storing the documents before the first ``bad`` one (a real insert_many sends
    its batches in order; a client-side error stops it midway)."""

    def __init__(self, first_error: Exception | None = None) -> None:
        self.first_error = first_error
        self.calls: list[list[Any]] = []
        self.stored: dict[Any, dict[str, Any]] = {}

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool) -> InsertManyResult:
        self.calls.append([d["_id"] for d in docs])
        if self.first_error is not None:  # everything stored, but the answer is lost
            self.stored.update({d["_id"]: d for d in docs})
            exc, self.first_error = self.first_error, None
            raise exc
        errors: list[dict[str, Any]] = []
        inserted = []
        for i, d in enumerate(docs):
            if d.get("huge"):
                raise DocumentTooLarge("BSON document too large (20000000 bytes)")
            if d.get("unencodable"):
                raise InvalidDocument("cannot encode object: <object>")
            if d["_id"] in self.stored:  # unordered: the others are still written
                errors.append({"index": i, "code": 11000, "errmsg": "E11000 duplicate key"})
                continue
            self.stored[d["_id"]] = d
            inserted.append(d["_id"])
        if errors:
            raise bulk_error(errors, n_inserted=len(inserted))
        return InsertManyResult(inserted, acknowledged=True)


def test_a_retry_after_a_network_error_counts_its_own_writes_as_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coll = ScriptedCollection(AutoReconnect("connection reset"))
    written, dups = count(sink_mod.metrics.WRITTEN), count(sink_mod.metrics.DUPLICATES)
    refused = asyncio.run(flaky_sink(coll, monkeypatch).write(DOCS))
    assert refused == []
    assert len(coll.calls) == 2
    assert count(sink_mod.metrics.DUPLICATES) == dups  # not redeliveries: this batch's writes
    assert count(sink_mod.metrics.WRITTEN) == written + 3


@pytest.mark.parametrize("bad", ["huge", "unencodable"])
def test_a_document_pymongo_cannot_send_is_dead_lettered_not_retried(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    docs = [("user_logs", {"_id": f"t:0:{i}", bad: i == 2}) for i in range(4)]
    coll = ScriptedCollection()
    refused = asyncio.run(asyncio.wait_for(flaky_sink(coll, monkeypatch).write(docs), 5))
    assert [i for i, _ in refused] == [2]
    assert "cannot be sent to MongoDB" in refused[0][1]
    assert set(coll.stored) == {"t:0:0", "t:0:1", "t:0:3"}
    # the batch, then each document alone
    assert coll.calls[0] == ["t:0:0", "t:0:1", "t:0:2", "t:0:3"]
    assert coll.calls[1:] == [["t:0:0"], ["t:0:1"], ["t:0:2"], ["t:0:3"]]
