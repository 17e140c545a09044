"""The archive agent when MongoDB fails: the batch's offsets are not committed while the
retries go on, and a rebalance (or a stop) makes the agent give the batch back unacknowledged
instead of holding faust's rebalance: the consumer never counts its offsets as safe to commit
(neither the archive agent's ack nor the count agent's reaches it), it waits for none of its
messages, and when the batch is read again no offset looks skipped.

The real agent function and the real faust consumer (not started), a stream that hands out
batches and acks them as faust's take_events does, and MongoDB answering through a scripted
collection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.consumer import ConsumerMessage
from faust.types import TP
from pymongo.errors import AutoReconnect
from pymongo.results import InsertManyResult

from cinepulse_archiver import agents, metrics, rebalance
from cinepulse_archiver import app as app_mod
from cinepulse_archiver.settings import ArchiverSettings

TOPIC = "user-events.rate"


class Mongo:
    """``insert_many`` and the positions' ``bulk_write``: fail while ``down``, else store
    (duplicates skipped)."""

    def __init__(self) -> None:
        self.down = False
        self.stored: dict[str, dict[str, Any]] = {}
        self.positions: dict[str, dict[str, int]] = {}
        self.attempts = 0

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool) -> InsertManyResult:
        self.attempts += 1
        if self.down:
            raise AutoReconnect("connection refused")
        new = [d for d in docs if d["_id"] not in self.stored]
        self.stored.update({d["_id"]: d for d in new})
        return InsertManyResult([d["_id"] for d in new], acknowledged=True)

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        # the first-seen probe reads the partition's position: none saved yet
        return self.positions.get(query["_id"])

    async def bulk_write(self, updates: list[Any], ordered: bool) -> None:
        # the positions' upserts ($max), one bulk write per batch
        if self.down:
            raise AutoReconnect("connection refused")
        for update in updates:
            key, offset = update._filter["_id"], update._doc["$max"]["next"]
            old = self.positions.get(key, {"next": 0})["next"]
            self.positions[key] = {"next": max(old, offset)}

    def find(self, query: dict[str, Any], projection: Any = None) -> Any:
        # the probe of a partition without a position: its documents just before
        found = [self.stored[i] for i in query["_id"]["$in"] if i in self.stored]

        class Cursor:
            async def to_list(self, n: Any) -> list[Any]:
                return found

        return Cursor()


class Stream:
    """take_events as faust runs it: each batch is acked once the agent's body returns."""

    def __init__(self, consumer: Any, batches: list[list[Any]]) -> None:
        self.consumer = consumer
        self.batches = batches
        self.handed: list[list[Any]] = []

    async def take_events(self, max_: int, within: float) -> AsyncIterator[list[Any]]:
        for events in self.batches:
            self.handed.append(events)
            try:
                yield list(events)
            finally:
                for event in events:
                    event.message.ack(self.consumer)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[faust.App, Mongo]]:
    settings = ArchiverSettings(
        kafka={"bootstrap_servers": "127.0.0.1:1"},  # type: ignore[arg-type]
        mongo={"url": "mongodb://127.0.0.1:9/", "server_selection_timeout_ms": 100},  # type: ignore[arg-type]
        data_dir=tmp_path,
    )
    mongo = Mongo()

    class Sink(app_mod.MongoSink):  # the app's sink, on the scripted collection
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.db = {"user_logs": mongo, "movies": mongo, "archiver_positions": mongo}  # type: ignore[assignment]

    monkeypatch.setattr(app_mod, "MongoSink", Sink)
    app = app_mod.create_app(settings)
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)

    def die(message: str, exc: BaseException, code: int = 70) -> None:  # not os._exit
        raise AssertionError(f"the agent would exit: {message}") from exc

    monkeypatch.setattr(agents, "_die", die)
    monkeypatch.setattr("cinepulse_archiver.sink.FIRST_DELAY_S", 0.01)
    yield app, mongo


def events(app: faust.App, offsets: range, refcount: int = 2) -> list[Any]:
    """Records of one partition, each handed to two streams (archive and count), as faust's
    consumer tracks them."""
    out = []
    for offset in offsets:
        message = ConsumerMessage(
            TOPIC, 0, offset, 1.7e9, 0, [], b"k", b'{"event_id": "e"}', None, tp=TP(TOPIC, 0)
        )
        message.refcount = refcount
        app.consumer.track_message(message)
        out.append(faust.Event(app, b"k", message.value, {}, message))
    return out


def acked_offsets(app: faust.App) -> list[int]:
    """The offsets the consumer may commit (what faust's commit reads)."""
    return sorted(app.consumer._acked[TP(TOPIC, 0)])  # type: ignore[attr-defined]


def count_agent_acks(batch: list[Any], app: faust.App) -> None:
    for event in batch:
        event.message.ack(app.consumer)


def kafka_gap_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """Kafka's answer to the archiver's gap reads: the records of the range asked for; the
    list returned collects the (partition, range) of each read."""
    read: list[tuple[Any, Any]] = []

    def read_range(kafka: Any, group: Any, tp: Any, gap: Any, timeout: Any) -> list[Any]:
        read.append((tp, gap))
        return [(agents.Source(TOPIC, 0, o, b"k", None), b'{"event_id": "e"}') for o in range(*gap)]

    monkeypatch.setattr(agents, "read_range", read_range)
    return read


def interrupted_by_a_rebalance(app: faust.App, mongo: Mongo, batch: list[Any]) -> None:
    """The archive agent on ``batch`` while MongoDB is down, until a rebalance begins after
    its third attempt: it must let go of the batch at once."""

    async def scenario() -> None:
        agent = asyncio.ensure_future(app.agents["archive"].fun(Stream(app.consumer, [batch])))
        while mongo.attempts < 3:
            await asyncio.sleep(0.01)
        app.rebalancing = True
        await asyncio.wait_for(agent, 5)

    asyncio.run(scenario())


def test_a_stored_batch_is_acked(setup: tuple[faust.App, Mongo]) -> None:
    app, mongo = setup
    batch = events(app, range(0, 3))
    asyncio.run(app.agents["archive"].fun(Stream(app.consumer, [batch])))
    count_agent_acks(batch, app)
    assert set(mongo.stored) == {f"{TOPIC}:0:{o}" for o in range(3)}
    assert acked_offsets(app) == [0, 1, 2]
    assert not app.consumer.unacked
    assert mongo.positions == {f"{TOPIC}:0": {"next": 3}}  # what the next worker reads


def test_without_a_position_the_documents_before_are_probed_once(
    setup: tuple[faust.App, Mongo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archive written before positions were saved (the first sighting after the
    upgrade): the documents of the offsets just before are looked up instead. 0..4 archived
    and faust starts this worker at 8: 5..7 are read again first, then positions rule."""
    app, mongo = setup
    read = kafka_gap_reads(monkeypatch)
    mongo.stored = {f"{TOPIC}:0:{o}": {"_id": f"{TOPIC}:0:{o}", "offset": o} for o in range(5)}
    batch = events(app, range(8, 10))
    asyncio.run(app.agents["archive"].fun(Stream(app.consumer, [batch])))
    assert [gap for _tp, gap in read] == [(5, 8)]
    assert mongo.positions == {f"{TOPIC}:0": {"next": 10}}


def test_a_recreated_topic_stops_the_archiver_before_anything_is_skipped(
    setup: tuple[faust.App, Mongo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive holds the partition up to 100, but Kafka's partition ends at 10 (deleted
    and created again): its records 0..9 would take archived documents' ids and be skipped
    as already stored. The agent exits (nothing acked, nothing committed) saying so."""
    app, mongo = setup
    mongo.positions[f"{TOPIC}:0"] = {"next": 100}
    monkeypatch.setattr(agents, "highwater", lambda _app, _tp: 10)
    batch = events(app, range(0, 3))
    with pytest.raises(AssertionError, match="the agent would exit") as exc:
        asyncio.run(app.agents["archive"].fun(Stream(app.consumer, [batch])))
    assert "the topic was recreated" in str(exc.value.__cause__)
    assert mongo.stored == {} and acked_offsets(app) == []


def test_a_first_batch_past_the_partitions_position_fills_the_gap_first(
    setup: tuple[faust.App, Mongo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker archived up to offset 5 and faust committed up to 8 (it skipped 5..7
    around a rebalance): this worker's first batch, from 8, reads 5..7 again first."""
    app, mongo = setup
    read = kafka_gap_reads(monkeypatch)
    mongo.positions[f"{TOPIC}:0"] = {"next": 5}
    batch = events(app, range(8, 10))
    asyncio.run(app.agents["archive"].fun(Stream(app.consumer, [batch])))
    assert [gap for _tp, gap in read] == [(5, 8)]
    assert set(mongo.stored) == {f"{TOPIC}:0:{o}" for o in range(5, 10)}
    assert mongo.positions == {f"{TOPIC}:0": {"next": 10}}


def test_a_rebalance_during_an_outage_gives_the_batch_back_unacknowledged(
    setup: tuple[faust.App, Mongo],
) -> None:
    app, mongo = setup
    mongo.down = True
    released = metrics.BATCHES_RELEASED.labels("rebalance")._value.get()
    retries = metrics.MONGO_RETRIES.labels("insert")._value.get()
    first = events(app, range(0, 3))

    async def scenario() -> None:
        stream = Stream(app.consumer, [first])
        agent = asyncio.ensure_future(app.agents["archive"].fun(stream))
        while mongo.attempts < 3:  # retried with backoff; nothing acked meanwhile
            await asyncio.sleep(0.01)
        assert acked_offsets(app) == []
        assert not agent.done()
        app.rebalancing = True  # faust sets it when the partitions are revoked
        await asyncio.wait_for(agent, 5)  # the agent let go of the batch at once

    asyncio.run(scenario())
    count_agent_acks(first, app)  # the count agent acks the same messages
    assert mongo.stored == {}
    assert acked_offsets(app) == [], "offsets of a batch never stored are safe to commit"
    assert not app.consumer.unacked, "faust's rebalance would wait for these messages"
    assert metrics.BATCHES_RELEASED.labels("rebalance")._value.get() == released + 1
    assert metrics.MONGO_RETRIES.labels("insert")._value.get() > retries

    # after the rebalance faust seeks to the committed offsets: the batch comes again
    app.rebalancing = False
    mongo.down = False
    again = events(app, range(0, 3))
    later = events(app, range(3, 5))
    asyncio.run(app.agents["archive"].fun(Stream(app.consumer, [again, later])))
    count_agent_acks(again + later, app)
    assert set(mongo.stored) == {f"{TOPIC}:0:{o}" for o in range(5)}
    assert acked_offsets(app) == [0, 1, 2, 3, 4]


def test_a_commit_past_a_given_back_batch_is_a_gap_filled_from_kafka(
    setup: tuple[faust.App, Mongo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should faust go on past the batch given back (its records skipped, not read again),
    the next record is beyond the partition's expectation: the gap is read from Kafka and
    archived before that batch is acked."""
    app, mongo = setup
    read = kafka_gap_reads(monkeypatch)
    fun = app.agents["archive"].fun
    asyncio.run(fun(Stream(app.consumer, [events(app, range(0, 2))])))  # the partition known
    mongo.down = True
    interrupted_by_a_rebalance(app, mongo, events(app, range(2, 5)))
    app.rebalancing, mongo.down = False, False
    asyncio.run(fun(Stream(app.consumer, [events(app, range(5, 7))])))
    assert read == [((TOPIC, 0), (2, 5))]
    assert set(mongo.stored) == {f"{TOPIC}:0:{o}" for o in range(7)}


def test_a_partitions_first_batch_given_back_is_still_expected(
    setup: tuple[faust.App, Mongo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partition's first batch here (no expectation yet, nothing archived before) is
    given back; should faust hand on later records without reading it again, its offsets
    are a gap read from Kafka, not forgotten (the review found them lost: the next record
    was taken for the partition's first, and faust, with no committed offset yet, would
    commit past the batch)."""
    app, mongo = setup
    read = kafka_gap_reads(monkeypatch)
    fun = app.agents["archive"].fun
    mongo.down = True
    interrupted_by_a_rebalance(app, mongo, events(app, range(0, 3)))
    assert mongo.stored == {}
    app.rebalancing, mongo.down = False, False
    asyncio.run(fun(Stream(app.consumer, [events(app, range(3, 5))])))
    assert read == [((TOPIC, 0), (0, 3))]
    assert set(mongo.stored) == {f"{TOPIC}:0:{o}" for o in range(5)}


def test_a_rebalance_waiting_for_a_message_no_stream_can_ack_goes_on(
    setup: tuple[faust.App, Mongo],
) -> None:
    """Handed to both agents, the count agent acked it, and the rebalance cleared the
    archive agent's copy from its queue: faust would wait for it forever. After a few
    seconds it is let go, unacknowledged (read again after the rebalance)."""
    app, _mongo = setup
    (event,) = events(app, range(7, 8))
    event.message.ack(app.consumer)  # one stream of two
    waiting: dict[str, float] = {}
    let_go = metrics.MESSAGES_LET_GO._value.get()
    assert rebalance.let_go_stuck_messages(app, waiting, 100.0) == 0  # not in a rebalance
    app.consumer.diag.set_flag(rebalance.WAIT_EMPTY_FLAG)
    assert rebalance.let_go_stuck_messages(app, waiting, 100.0) == 0
    assert rebalance.let_go_stuck_messages(app, waiting, 103.0) == 0  # may still be acked
    assert rebalance.let_go_stuck_messages(app, waiting, 100.0 + rebalance.STUCK_WAIT_EMPTY_S) == 1
    assert not app.consumer.unacked
    event.message.ack(app.consumer)  # a late ack of the other copy changes nothing
    assert acked_offsets(app) == []
    assert metrics.MESSAGES_LET_GO._value.get() == let_go + 1
