"""MongoDB errors in the archiver's sink: which are retried (with backoff, the write not
returning meanwhile, so the batch is not acked and no offset committed), which dead-lettered,
which taken as already written; and the retries giving way to a rebalance or a stop. Real
pymongo exception objects; no server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson.errors import InvalidDocument
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DocumentTooLarge,
    ExecutionTimeout,
    NetworkTimeout,
    NotPrimaryError,
    ServerSelectionTimeoutError,
)
from pymongo.results import InsertManyResult

from cinepulse_archiver import metrics
from cinepulse_archiver import sink as sink_mod
from cinepulse_archiver.sink import (
    DUPLICATE,
    INVALID,
    RETRY,
    MongoSink,
    WriteInterrupted,
    classify_write_error,
    sort_bulk_error,
)
from cinepulse_common.settings import MongoSettings

NOT_PRIMARY = 10107
SHUTDOWN = 91
DOCS = [("user_logs", {"_id": f"t:0:{i}"}) for i in range(3)]
IDS = {"t:0:0", "t:0:1", "t:0:2"}


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


def value(counter: Any, label: str) -> float:
    return float(counter.labels(label)._value.get())


class Collection:
    """``insert_many`` answered by the queued outcomes first (an exception, or ``"stall"``:
    never answers), then a real unordered insert: what is already stored answers with a
    duplicate key. A ``BulkWriteError`` stores the documents its write errors do not name
    (unless it carries a write-concern error: then nothing is stored)."""

    def __init__(self, outcomes: list[Exception | str] | None = None) -> None:
        self.outcomes = list(outcomes or [])
        self.calls: list[list[Any]] = []
        self.stored: dict[Any, dict[str, Any]] = {}
        self.cancelled = 0

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool) -> InsertManyResult:
        assert ordered is False
        self.calls.append([d["_id"] for d in docs])
        if self.outcomes:
            outcome = self.outcomes.pop(0)
            if outcome == "stall":
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    self.cancelled += 1
                    raise
            assert isinstance(outcome, Exception)
            if isinstance(outcome, BulkWriteError) and not outcome.details["writeConcernErrors"]:
                failed = {e["index"] for e in outcome.details["writeErrors"]}
                self.stored.update({d["_id"]: d for i, d in enumerate(docs) if i not in failed})
            raise outcome
        errors: list[dict[str, Any]] = []
        inserted = []
        for i, d in enumerate(docs):
            if d.get("huge"):
                raise DocumentTooLarge("BSON document too large (20000000 bytes)")
            if d.get("unencodable"):
                raise InvalidDocument("cannot encode object: <object>")
            if d.get("dollar"):
                errors.append({"index": i, "code": 2, "errmsg": 'invalid key: "$x"'})
                continue
            if d["_id"] in self.stored:
                errors.append({"index": i, "code": 11000, "errmsg": "E11000 duplicate key"})
                continue
            self.stored[d["_id"]] = d
            inserted.append(d["_id"])
        if errors:
            raise bulk_error(errors, n_inserted=len(inserted))
        return InsertManyResult(inserted, acknowledged=True)


class Sink(MongoSink):
    """The real sink on a scripted collection; its pauses are recorded, not slept."""

    def __init__(self, coll: Collection, yield_reason: list[str | None] | None = None) -> None:
        reasons = yield_reason if yield_reason is not None else [None]
        super().__init__(
            MongoSettings(url="mongodb://127.0.0.1:1/", database="t"),  # type: ignore[arg-type]
            retry_max_s=1.0,
            should_yield=lambda: reasons[0],
        )
        self.db = {"user_logs": coll}  # type: ignore[assignment]
        self.pauses: list[float] = []

    async def _pause(self, seconds: float, what: str) -> None:
        self.pauses.append(seconds)
        self._check_yield(what)
        await asyncio.sleep(0)


def write(sink: MongoSink, docs: list[tuple[str, dict[str, Any]]] = DOCS) -> Any:
    return asyncio.run(asyncio.wait_for(sink.write(docs), 5))


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"}, DUPLICATE),
        ({"index": 0, "code": 2, "errmsg": 'invalid key: "$bad"'}, INVALID),
        ({"index": 0, "code": 121, "errmsg": "Document failed validation"}, INVALID),
        ({"index": 0, "code": 10334, "errmsg": "BSONObjectTooLarge"}, INVALID),
        ({"index": 0, "code": NOT_PRIMARY, "errmsg": "not primary"}, RETRY),
        ({"index": 0, "code": SHUTDOWN, "errmsg": "shutdown in progress"}, RETRY),
        ({"index": 0, "code": 89, "errmsg": "NetworkTimeout"}, RETRY),
        ({"index": 0, "code": 50, "errmsg": "operation exceeded time limit"}, RETRY),
        ({"index": 0, "code": 2, "errorLabels": ["RetryableWriteError"], "errmsg": "x"}, RETRY),
        ({"index": 0, "code": 424242, "errmsg": "never heard of it"}, RETRY),
        ({"index": 0, "errmsg": "no code at all"}, RETRY),
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


# --------------------------------------------------------------------------- transient


@pytest.mark.parametrize(
    "error",
    [
        AutoReconnect("connection refused"),
        NotPrimaryError("not primary"),
        NetworkTimeout("timed out"),
        ExecutionTimeout("operation exceeded time limit", 50),  # timeoutMS ran out
        ServerSelectionTimeoutError("No servers found yet"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transient_errors_are_retried_with_backoff(error: Exception) -> None:
    coll = Collection([error] * 5)
    sink = Sink(coll)
    errors = value(metrics.MONGO_ERRORS, type(error).__name__)
    retries = value(metrics.MONGO_RETRIES, "insert")
    assert write(sink) == []
    assert set(coll.stored) == IDS
    assert len(coll.calls) == 6
    assert sink.pauses == [0.2, 0.4, 0.8, 1.0, 1.0]  # doubled, capped at retry_max_s
    assert value(metrics.MONGO_ERRORS, type(error).__name__) == errors + 5
    assert value(metrics.MONGO_RETRIES, "insert") == retries + 5


def test_the_write_does_not_return_while_mongodb_fails() -> None:
    """The agent acks its batch (and faust commits the offsets) only once ``write`` returns:
    while MongoDB fails it does not."""

    async def scenario() -> None:
        coll = Collection()
        failures = 0

        async def down(docs: list[dict[str, Any]], ordered: bool) -> InsertManyResult:
            nonlocal failures
            failures += 1
            raise ServerSelectionTimeoutError("No servers found yet")

        coll.insert_many = down  # type: ignore[method-assign]
        sink = MongoSink(
            MongoSettings(url="mongodb://127.0.0.1:1/", database="t"),  # type: ignore[arg-type]
            retry_max_s=0.05,
        )
        sink.db = {"user_logs": coll}  # type: ignore[assignment]
        task = asyncio.ensure_future(sink.write(DOCS))
        await asyncio.sleep(0.6)
        assert not task.done(), "write returned while MongoDB was down"
        assert failures >= 4
        del coll.insert_many  # MongoDB is back
        assert await asyncio.wait_for(task, 5) == []
        assert set(coll.stored) == IDS

    asyncio.run(scenario())


def test_write_errors_with_a_retryable_code_are_written_again_not_dead_lettered() -> None:
    coll = Collection(
        [
            bulk_error(
                [{"index": i, "code": NOT_PRIMARY, "errmsg": "not primary"} for i in (0, 2)]
            ),
            bulk_error([{"index": 0, "code": SHUTDOWN, "errmsg": "shutting down"}]),
        ]
    )
    errors = value(metrics.MONGO_ERRORS, "TransientWriteError")
    assert write(Sink(coll)) == []
    assert coll.calls == [["t:0:0", "t:0:1", "t:0:2"], ["t:0:0", "t:0:2"], ["t:0:0"]]
    assert set(coll.stored) == IDS
    assert value(metrics.MONGO_ERRORS, "TransientWriteError") == errors + 2


def test_a_write_concern_error_is_a_failure_and_retried() -> None:
    coll = Collection([bulk_error([], wce=[{"code": 64, "errmsg": "wtimeout"}], n_inserted=3)])
    errors = value(metrics.MONGO_ERRORS, "WriteConcernError")
    written = value(metrics.WRITTEN, "user_logs")
    sink = Sink(coll)
    assert write(sink) == []
    assert len(coll.calls) == 2  # written again, not taken as stored
    assert sink.pauses == [0.2]
    assert set(coll.stored) == IDS
    assert value(metrics.MONGO_ERRORS, "WriteConcernError") == errors + 1
    assert value(metrics.WRITTEN, "user_logs") == written + 3  # counted once, when stored


def test_a_retry_after_a_network_error_counts_its_own_writes_as_written() -> None:
    class Lost(Collection):  # the first insert is stored but its answer is lost
        async def insert_many(self, docs: list[dict[str, Any]], ordered: bool) -> InsertManyResult:
            if not self.calls:
                self.calls.append([d["_id"] for d in docs])
                self.stored.update({d["_id"]: d for d in docs})
                raise AutoReconnect("connection reset")
            return await super().insert_many(docs, ordered)

    coll = Lost()
    written, dups = value(metrics.WRITTEN, "user_logs"), value(metrics.DUPLICATES, "user_logs")
    assert write(Sink(coll)) == []
    assert len(coll.calls) == 2
    assert value(metrics.DUPLICATES, "user_logs") == dups  # not redeliveries: its own writes
    assert value(metrics.WRITTEN, "user_logs") == written + 3


# --------------------------------------------------------------------------- invalid, duplicate


def test_a_document_mongodb_calls_invalid_is_refused_once() -> None:
    docs = [("user_logs", {"_id": f"t:0:{i}", "dollar": i == 1}) for i in range(3)]
    coll = Collection()
    refused = write(Sink(coll), docs)
    assert [i for i, _ in refused] == [1]
    assert "MongoDB refused it" in refused[0][1]
    assert len(coll.calls) == 1
    assert set(coll.stored) == {"t:0:0", "t:0:2"}


@pytest.mark.parametrize("bad", ["huge", "unencodable"])
def test_a_document_pymongo_cannot_send_is_dead_lettered_not_retried(bad: str) -> None:
    docs = [("user_logs", {"_id": f"t:0:{i}", bad: i == 2}) for i in range(4)]
    coll = Collection()
    refused = write(Sink(coll), docs)
    assert [i for i, _ in refused] == [2]
    assert "cannot be sent to MongoDB" in refused[0][1]
    assert set(coll.stored) == {"t:0:0", "t:0:1", "t:0:3"}
    # the batch, then each document alone
    assert coll.calls[0] == ["t:0:0", "t:0:1", "t:0:2", "t:0:3"]
    assert coll.calls[1:] == [["t:0:0"], ["t:0:1"], ["t:0:2"], ["t:0:3"]]


def test_a_duplicate_key_is_already_written() -> None:
    coll = Collection()
    coll.stored = {"t:0:1": {"_id": "t:0:1"}}  # a redelivery: stored before
    dups, written = value(metrics.DUPLICATES, "user_logs"), value(metrics.WRITTEN, "user_logs")
    sink = Sink(coll)
    assert write(sink) == []
    assert len(coll.calls) == 1 and sink.pauses == []
    assert value(metrics.DUPLICATES, "user_logs") == dups + 1
    assert value(metrics.WRITTEN, "user_logs") == written + 2


# --------------------------------------------------------------------------- giving way


def test_a_rebalance_interrupts_the_backoff() -> None:
    reason: list[str | None] = [None]
    coll = Collection([AutoReconnect("down")] * 100)
    sink = Sink(coll, reason)

    async def scenario() -> None:
        task = asyncio.ensure_future(sink.write(DOCS))
        while len(coll.calls) < 3:
            await asyncio.sleep(0)
        reason[0] = "rebalance"
        with pytest.raises(WriteInterrupted) as info:
            await asyncio.wait_for(task, 5)
        assert info.value.reason == "rebalance"

    asyncio.run(scenario())
    assert coll.stored == {}


def test_a_retry_in_flight_is_cancelled_when_the_worker_must_let_go() -> None:
    """A retried attempt that hangs (an unreachable server) does not hold a rebalance."""
    reason: list[str | None] = [None]
    coll = Collection([AutoReconnect("down"), "stall"])
    sink = Sink(coll, reason)

    async def scenario() -> None:
        task = asyncio.ensure_future(sink.write(DOCS))
        while len(coll.calls) < 2:
            await asyncio.sleep(0.01)
        reason[0] = "stopping"
        with pytest.raises(WriteInterrupted):
            await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert coll.cancelled == 1


def test_a_healthy_write_in_flight_is_not_cut_short_by_a_rebalance() -> None:
    reason: list[str | None] = ["rebalance"]
    coll = Collection()
    assert write(Sink(coll, reason)) == []
    assert set(coll.stored) == IDS


def test_the_pause_gives_way_in_short_steps() -> None:
    reason: list[str | None] = [None]
    sink = MongoSink(
        MongoSettings(url="mongodb://127.0.0.1:1/", database="t"),  # type: ignore[arg-type]
        should_yield=lambda: reason[0],
    )

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, reason.__setitem__, 0, "rebalance")
        started = loop.time()
        with pytest.raises(WriteInterrupted):
            await sink._pause(30.0, "insert")
        return loop.time() - started

    assert asyncio.run(scenario()) < 0.3 + 2 * sink_mod.YIELD_POLL_S


def test_each_attempt_is_bounded_by_the_operation_timeout() -> None:
    """An insert the server never answers is abandoned after ``op_timeout_s`` (pymongo's
    timeoutMS raises one of the timeouts above) and retried, instead of holding the batch."""
    settings = MongoSettings(url="mongodb://127.0.0.1:9/")  # type: ignore[arg-type]
    bounded = MongoSink(settings, op_timeout_s=12.5)
    unbounded = MongoSink(settings)
    assert bounded.client.options.timeout == 12.5
    assert unbounded.client.options.timeout is None
