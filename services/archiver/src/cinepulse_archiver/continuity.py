"""Every offset of a partition archived: the check the archive agent makes before it lets
faust commit a batch.

faust-streaming can drop records around a consumer-group rebalance. Records fetched while
the worker rejoins the group are skipped (their generation is stale, or flow control has not
resumed yet), and faust *acks* skipped records so that the lag does not grow: their offsets
are committed although no agent saw them (faust-streaming issues #216, #221, #236 are this
family). A Kafka broker that restarts forces such a rebalance (the group coordinator forgets
the member), and the fault drill "SIGKILL Kafka during ingest" lost acknowledged events from
the raw backup this way: contiguous offsets of several partitions, produced while the worker
was recovering, never archived, committed all the same.

So the agent keeps, per source partition it owns, the next offset it expects
(:class:`Continuity`). A record beyond it means the offsets in between were skipped: they are
read again straight from Kafka (:func:`read_range`: a consumer of its own, assigned to the
partition, joining no group, committing nothing) and archived before the batch is acked, so
no commit passes a record that is not in MongoDB. Offsets that hold no record (transaction
markers, compaction) read as nothing. When the agent first sees a partition (at start, or
when the partition comes back from another worker) there is no expectation in memory: the
archive itself answers (:func:`gap_before`), from the partition's position document, saved
with every batch.

A batch that MongoDB could not store when a rebalance or a stop interrupted its retries is
given back unacknowledged, and the expectations of its partitions are put back to what they
were before it (:meth:`Continuity.restore`): the batch is read again, and any commit past it
is a gap the next batch fills.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import faust
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from faust.types import TP as FaustTP

from cinepulse_archiver.documents import Source
from cinepulse_common.kafka import make_consumer
from cinepulse_common.settings import KafkaSettings

TP = tuple[str, int]
#: a half-open range of offsets ``[start, stop)``
Gap = tuple[int, int]


class Continuity:
    """The next offset expected per source partition."""

    def __init__(self) -> None:
        self._next: dict[TP, int] = {}

    def knows(self, tp: TP) -> bool:
        return tp in self._next

    def expect(self, tp: TP, offset: int) -> None:
        self._next[tp] = offset

    def observe(self, tp: TP, offset: int) -> Gap | None:
        """Record that ``offset`` of ``tp`` is being archived; the skipped range before it,
        if any. An offset at or below the expectation (a redelivery) is no gap."""
        expected = self._next.get(tp)
        self._next[tp] = max(expected or 0, offset + 1)
        if expected is not None and offset > expected:
            return (expected, offset)
        return None

    def snapshot(self, tps: Iterable[TP]) -> dict[TP, int | None]:
        """The expectations of ``tps`` as they are (``None``: not known), for :meth:`restore`."""
        return {tp: self._next.get(tp) for tp in tps}

    def restore(self, snapshot: dict[TP, int | None], first: dict[TP, int]) -> None:
        """Put back expectations taken by :meth:`snapshot`: the batch observed since was not
        archived (given back unacknowledged), so its offsets are expected again. Should faust
        commit past them all the same, the next record seen reveals the gap. A partition
        with no expectation before the batch (its first batch here) now expects the batch's
        ``first`` offset: forgetting it would let the next record be taken for the first,
        and faust (no committed offset yet) commit past the batch with no gap seen."""
        for tp, expected in snapshot.items():
            if expected is None:
                expected = first.get(tp)
            if expected is None:
                self._next.pop(tp, None)
            else:
                self._next[tp] = expected

    def retain(self, owned: Iterable[TP]) -> None:
        """Keep the expectations of the partitions still owned after a rebalance only: one
        that went to another worker comes back with a history this worker did not see."""
        keep = set(owned)
        for tp in [tp for tp in self._next if tp not in keep]:
            del self._next[tp]


def gap_before(offset: int, archived_to: int | None, window: int) -> Gap | None:
    """The gap before ``offset``, the first offset seen of a partition, given the partition's
    position (``archived_to``: the offset after everything archived, None if never saved).

    A position behind ``offset`` means offsets were committed but never archived (faust
    skipped them around a rebalance, after the last batch that saved the position): they are
    the gap, at most ``window`` of them (read again from Kafka; older ones are the
    reconciliation's to find). No position says nothing (a new archive, or one written before
    positions were saved): no gap. A position at or past ``offset`` is a redelivery."""
    if archived_to is None or archived_to >= offset:
        return None
    return (max(archived_to, offset - window), offset)


class TopicRecreated(RuntimeError):
    """A partition's saved position is beyond its newest offset: the topic was deleted and
    created again (or the archive belongs to another Kafka). Its new records would take the
    positions, so the document ids, of archived ones, and be skipped as already stored."""

    def __init__(self, tp: TP, archived_to: int, high: int) -> None:
        super().__init__(
            f"{tp[0]}[{tp[1]}] holds offsets up to {high} but the archive has records of it "
            f"up to {archived_to}: the topic was recreated (or this is another Kafka). "
            "Archiving it would skip its new records as already stored. Move the topic's "
            "documents and its archiver_positions document aside, then restart "
            "(docs/operations/reliability.md)"
        )


def check_not_recreated(tp: TP, archived_to: int | None, high: int | None) -> None:
    """Raise :class:`TopicRecreated` when the position is beyond the partition's high
    watermark (offsets never go back under retention or compaction: only a new topic's do)."""
    if archived_to is not None and high is not None and archived_to > high:
        raise TopicRecreated(tp, archived_to, high)


def highwater(app: faust.App, tp: tuple[str, int]) -> int | None:
    """The partition's high watermark as the consumer's last fetch saw it (no request);
    None when unknown."""
    try:
        value = app.consumer.highwater(FaustTP(tp[0], tp[1]))
    except Exception:
        return None
    return None if value is None else int(value)


def first_gap(offset: int, window_start: int, archived: Iterable[int]) -> Gap | None:
    """The gap before ``offset``, the first offset seen of a partition, given the offsets in
    ``[window_start, offset)`` that have a document: none when the one just before is there
    (or ``offset`` is the partition's first), from the newest archived one otherwise. With
    nothing archived in the window nothing can be said (a new archive, or a long stretch of
    records that could not be documents): no gap."""
    before = [o for o in archived if window_start <= o < offset]
    if offset == 0 or (offset - 1) in before or not before:
        return None
    return (max(before) + 1, offset)


def read_range(
    settings: KafkaSettings,
    group_id: str,
    tp: TP,
    gap: Gap,
    timeout_s: float,
) -> list[tuple[Source, bytes | None]]:
    """The records of ``tp`` in ``gap``, read directly (blocking: run it in a thread)."""
    topic, partition = tp
    start, stop = gap
    consumer = make_consumer(settings, group_id, **{"enable.partition.eof": True})
    out: list[tuple[Source, bytes | None]] = []
    deadline = time.monotonic() + timeout_s
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        stop = min(stop, high)
        if stop <= start:
            return out
        consumer.assign([TopicPartition(topic, partition, start)])
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}[{partition}] {start}..{stop} not read in {timeout_s}s")
            done = False
            for m in consumer.consume(num_messages=500, timeout=1.0):
                err: Any = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done = True
                        continue
                    raise KafkaException(err)
                offset = m.offset()
                if offset is None or offset >= stop:
                    done = True
                    continue
                _kind, ts = m.timestamp()
                source = Source(topic, partition, offset, m.key(), ts if ts >= 0 else None)
                out.append((source, m.value()))
            position = consumer.position([TopicPartition(topic, partition)])[0].offset
            if done or position >= stop:
                return out
    finally:
        consumer.close()
