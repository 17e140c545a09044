"""What each store holds of a window's records: Kafka (the records and the dead letters),
MongoDB (the archiver's raw documents) and PostgreSQL (staging, quarantine, facts, the
fallback's pending runs). Reads only; every lookup is by key (positions, event ids)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition
from pymongo.collection import Collection

from cinepulse_common import topics
from cinepulse_common.kafka import make_consumer
from cinepulse_common.logging import get_logger
from cinepulse_common.settings import KafkaSettings
from cinepulse_quality.reconcile import KafkaRecord, Observed, Position, event_id_of

log = get_logger(__name__)

#: positions / ids per lookup statement
CHUNK = 5_000
FACTS = ("fact_watch", "fact_rating", "fact_comment", "fact_click")


class ReadTimeout(TimeoutError):
    """Kafka did not deliver the window's records before the deadline."""


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _ranges(
    consumer: Consumer, names: Iterable[str], start: datetime, end: datetime | None, timeout: float
) -> list[tuple[str, int, int, int]]:
    """``(topic, partition, first, stop)``: the offsets whose timestamps fall in the window
    (``end=None``: up to the end of the log)."""
    out = []
    for name in names:
        meta = consumer.list_topics(name, timeout=timeout).topics.get(name)
        if meta is None or meta.error is not None:
            log.warning("topic missing", topic=name)
            continue
        parts = sorted(meta.partitions)
        firsts = consumer.offsets_for_times(
            [TopicPartition(name, p, _ms(start)) for p in parts], timeout=timeout
        )
        stops = (
            consumer.offsets_for_times(
                [TopicPartition(name, p, _ms(end)) for p in parts], timeout=timeout
            )
            if end is not None
            else [TopicPartition(name, p, OFFSET_END) for p in parts]
        )
        for first, stop in zip(firsts, stops, strict=True):
            _low, high = consumer.get_watermark_offsets(first, timeout=timeout)
            lo = high if first.offset < 0 else first.offset
            hi = high if stop.offset < 0 else stop.offset
            if hi > lo:
                out.append((name, first.partition, lo, hi))
    return out


def _read(
    consumer: Consumer, ranges: list[tuple[str, int, int, int]], deadline: float
) -> Iterator[tuple[Position, bytes | None]]:
    """Every record of the ranges (each read once, offsets assigned, nothing committed)."""
    if not ranges:
        return
    stop = {(t, p): hi for t, p, _lo, hi in ranges}
    consumer.assign([TopicPartition(t, p, lo) for t, p, lo, _hi in ranges])
    while stop:
        if time.monotonic() > deadline:
            raise ReadTimeout(f"records not read before the deadline: {sorted(stop)}")
        messages = consumer.consume(num_messages=1000, timeout=1.0)
        for m in messages:
            if m.error():
                raise KafkaException(m.error())
            key = (str(m.topic()), int(m.partition() or 0))
            hi, offset = stop.get(key), m.offset()
            if hi is None or offset is None or offset >= hi:
                continue
            yield (key[0], key[1], offset), m.value()
            if offset >= hi - 1:
                del stop[key]
                consumer.pause([TopicPartition(key[0], key[1])])
        if not messages:
            # offsets without a record (transaction markers) are never delivered: a partition
            # whose position reached the range's end is done
            for (t, p), tp in zip(
                list(stop), consumer.position([TopicPartition(t, p) for t, p in stop]), strict=True
            ):
                if tp.offset >= stop[(t, p)]:
                    del stop[(t, p)]
    consumer.unassign()


def _json(value: bytes | None) -> Any:
    try:
        return json.loads(value) if value is not None else None
    except (ValueError, UnicodeDecodeError):
        return None


def read_kafka(
    s: KafkaSettings,
    group_id: str,
    start: datetime,
    end: datetime,
    timeout_s: float,
) -> tuple[list[KafkaRecord], set[Position]]:
    """The window's user-event records, and the source positions named by dead letters
    written since ``start`` (a dead letter comes after its record)."""
    deadline = time.monotonic() + timeout_s
    consumer = make_consumer(s, group_id)
    try:
        names = [s.topic(t) for t in topics.USER_EVENT_TOPICS]
        records = [
            KafkaRecord(pos, event_id_of(_json(value), pos))
            for pos, value in _read(consumer, _ranges(consumer, names, start, end, 10), deadline)
        ]
        dead: set[Position] = set()
        dlq = [s.topic(topics.DEAD_LETTER)]
        for _pos, value in _read(consumer, _ranges(consumer, dlq, start, None, 10), deadline):
            letter = _json(value)
            if (
                isinstance(letter, dict)
                and {
                    "source_topic",
                    "source_partition",
                    "source_offset",
                }
                <= letter.keys()
            ):
                dead.add(
                    (
                        str(letter["source_topic"]),
                        int(letter["source_partition"]),
                        int(letter["source_offset"]),
                    )
                )
        return records, dead
    finally:
        consumer.close()


def is_ferretdb(collection: Collection[dict[str, Any]]) -> bool:
    """FerretDB says so in ``buildInfo`` (``ferretdbVersion``, ``ferretdbFeatures`` in 1.x);
    MongoDB has no such key."""
    info = collection.database.client.admin.command("buildInfo")
    return any(key.lower().startswith("ferretdb") for key in info)


def read_mongo(
    collection: Collection[dict[str, Any]],
    positions: Sequence[Position],
    lookup: str = "keys",
) -> set[Position]:
    """The positions that have a raw document (``_id`` is ``<topic>:<partition>:<offset>``).

    ``keys``: ``_id`` $in lookups, a chunk at a time (MongoDB answers them from its index).
    ``scan``: every ``_id`` of the collection, read once and matched here; on a server that
    scans the whole collection for each $in (FerretDB on SQLite), one scan beats one per
    chunk. ``auto``: scan on FerretDB when there is more than one chunk, else keys."""
    by_id = {f"{t}:{p}:{o}": (t, p, o) for t, p, o in positions}
    if lookup == "auto":
        lookup = "scan" if len(by_id) > CHUNK and is_ferretdb(collection) else "keys"
    found: set[Position] = set()
    if lookup == "scan":
        for doc in collection.find({}, projection={"_id": 1}, batch_size=10_000):
            pos = by_id.get(doc["_id"])
            if pos is not None:
                found.add(pos)
        return found
    for chunk in _chunks(list(by_id)):
        for doc in collection.find({"_id": {"$in": list(chunk)}}, projection={"_id": 1}):
            found.add(by_id[doc["_id"]])
    return found


def read_postgres(conn: psycopg.Connection[Any], observed: Observed) -> None:
    """Fill the PostgreSQL part of ``observed`` for its records."""
    ids = sorted({r.event_id for r in observed.records if r.event_id is not None})
    positions = [r.position for r in observed.records]
    with conn.cursor() as cur:
        for chunk in _chunks(ids):
            cur.execute(
                "SELECT event_id::text, source_topic, source_partition, source_offset "
                "FROM stg_user_logs WHERE event_id = ANY(%s::uuid[])",
                (list(chunk),),
            )
            for event_id, t, p, o in cur.fetchall():
                observed.staged[event_id] = (t, p, o)
            cur.execute(
                " UNION ALL ".join(
                    f"SELECT event_id::text FROM {table} WHERE event_id = ANY(%(ids)s::uuid[])"
                    for table in FACTS
                ),
                {"ids": list(chunk)},
            )
            observed.fact_ids.update(r[0] for r in cur.fetchall())
            cur.execute(
                " UNION ".join(
                    f"SELECT f.event_id::text FROM fallback.{table} AS f "
                    "JOIN fallback.runs AS r USING (run_id) "
                    "WHERE r.status = 'succeeded' AND f.event_id = ANY(%(ids)s::uuid[])"
                    for table in FACTS
                ),
                {"ids": list(chunk)},
            )
            observed.pending_fallback_ids.update(r[0] for r in cur.fetchall())
            # the main fact is the copy a promoted run inserted (same source flag; where
            # Spark's fact was already there, promotion left it, and it needs its staging)
            cur.execute(
                " UNION ".join(
                    f"SELECT f.event_id::text FROM fallback.{table} AS f "
                    "JOIN fallback.runs AS r USING (run_id) "
                    f"JOIN public.{table} AS p USING (event_id) "
                    "WHERE r.status = 'promoted' AND p.source_flag = f.source_flag "
                    "AND f.event_id = ANY(%(ids)s::uuid[])"
                    for table in FACTS
                ),
                {"ids": list(chunk)},
            )
            observed.promoted_ids.update(r[0] for r in cur.fetchall())
        for chunk in _chunks(positions):
            arrays = [list(col) for col in zip(*chunk, strict=True)]
            for table, into, run_filter in (
                ("quarantine", observed.quarantined, ""),
                (
                    "fallback.quarantine",
                    observed.pending_fallback_positions,
                    "AND q.run_id IN (SELECT run_id FROM fallback.runs WHERE status = 'succeeded')",
                ),
            ):
                cur.execute(
                    f"SELECT DISTINCT q.source_topic, q.source_partition, q.source_offset "
                    f"FROM {table} AS q "
                    "JOIN unnest(%s::text[], %s::int[], %s::bigint[]) AS w(t, p, o) "
                    "ON q.source_topic = w.t AND q.source_partition = w.p "
                    f"AND q.source_offset = w.o {run_filter}",
                    arrays,
                )
                into.update((t, p, o) for t, p, o in cur.fetchall())
