"""The archiver's agents, task and timers, registered on the faust app by
:func:`register_agents` (called by :func:`cinepulse_archiver.app.create_app`).

Agents
------
``archive``  every user-event topic and ``movie``; takes records in batches
             (``batch_size`` / ``batch_within_s``), writes them to MongoDB and only then
             lets faust commit their offsets. A MongoDB outage stalls the agent (retried
             with backoff, the lag grows) - it never skips a record. A rebalance or a stop
             during the outage interrupts the retries: the batch is given back
             unacknowledged (its offsets are not committed; it is read again after the
             rebalance or the restart), so faust's rebalance, which waits for the agent's
             batch, is never held by MongoDB. A record that cannot be a document goes to
             the dead-letter topic, with the reason, before its offset is committed.
             Offsets faust skipped around a rebalance are read again from Kafka and
             archived first (:mod:`cinepulse_archiver.continuity`).
``count``    the user-event topics; per-minute tumbling windows (faust windowed tables,
             changelogged in Kafka, so a restart resumes the counts) of events per type
             and events per movie. No key index: the counter views
             (:mod:`cinepulse_archiver.web`) read the stored entries of the windows they ask
             for, and entries older than the tables' ``expires`` are dropped every
             ``TABLE_CLEANUP_S``, recovered ones included (:mod:`cinepulse_archiver.counters`),
             so memory and a read's cost follow the keys counted in the kept windows, not
             every movie ever counted.

Table keys carry the changelog partition they are written to (``rate@2``, ``603@0``): a key
is only ever written from, and recovered from, one partition; reads sum over all keys.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any, NoReturn, cast

from cinepulse_archiver import metrics
from cinepulse_archiver.continuity import (
    Continuity,
    Gap,
    check_not_recreated,
    first_gap,
    gap_before,
    highwater,
    read_range,
)
from cinepulse_archiver.counters import expire_stale
from cinepulse_archiver.documents import (
    MOVIES,
    USER_LOGS,
    Source,
    Unusable,
    counter_keys,
    dead_letter,
    parse_value,
    to_document,
)
from cinepulse_archiver.parts import Parts
from cinepulse_archiver.rebalance import (
    let_go_stuck_messages,
    withhold,
)
from cinepulse_archiver.sink import WriteInterrupted
from cinepulse_common.logging import get_logger

log = get_logger(__name__)

#: offsets read back from Kafka at a time when filling a skipped range
GAP_CHUNK = 10_000
#: seconds between two expiries of the counters' stale windows (faust's and the archiver's)
TABLE_CLEANUP_S = 30.0


def register_agents(parts: Parts) -> None:
    """The ``archive`` and ``count`` agents, the start task and the timers, on ``parts.app``
    (faust registers each as it is decorated)."""
    app, settings, sink = parts.app, parts.settings, parts.sink
    k = settings.kafka
    dlq, sources, user_events = parts.dlq, parts.sources, parts.user_events
    source_names, movie_topic_name = parts.source_names, parts.movie_topic_name
    per_minute, per_movie = parts.per_minute, parts.per_movie
    next_offset: dict[tuple[str, int], int] = {}
    continuity = Continuity()

    async def send_dead_letter(source: Source, value: bytes | None, exc: Unusable) -> None:
        fut = await dlq.send(
            key=source.key,
            value=dead_letter(source, value, str(exc), exc.code),
            headers=[
                ("x-reason", str(exc).encode()[:1000]),
                ("x-source", source.doc_id.encode()),
            ],
        )
        await fut  # delivered before the source offset can be committed
        metrics.DEAD_LETTERED.labels(exc.code).inc()
        log.warning("record dead-lettered", source=source.doc_id, reason=str(exc), code=exc.code)

    @app.agent(sources, name="archive")
    async def archive(stream: Any) -> None:  # faust.Stream (its stubs lack take_events)
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            expected = continuity.snapshot({(e.message.topic, e.message.partition) for e in batch})
            try:
                await archive_batch(batch)
            except WriteInterrupted as exc:
                give_back(batch, expected, exc)
            except asyncio.CancelledError as exc:
                # stopping in the middle of a batch: leave without acking it either
                _die("stopped during a batch; exiting without committing it", exc, code=0)
            except BaseException as exc:
                # take_events acks a batch even when its body raises, and faust would then
                # commit offsets of records never archived. Exit at once instead (no
                # commit): the restarted worker reads the batch again.
                _die("archiving a batch failed; exiting so that nothing is committed", exc)

    def give_back(
        batch: list[Any], expected: dict[tuple[str, int], int | None], exc: WriteInterrupted
    ) -> None:
        """A batch MongoDB has not stored, left when a rebalance or a stop interrupted the
        retries: none of its offsets may be committed. take_events acks a batch once its
        body returns, and the count agent acks the same messages: each message is marked
        acked here without telling the consumer, so those acks are no-ops and the consumer
        never counts the offset as safe to commit, nor waits for it (faust's rebalance
        waits for every message handed to a stream). After the rebalance faust seeks to the
        committed offsets and the batch is read again; the partitions' expectations are
        put back, so a commit past the batch all the same is a gap the next batch fills."""
        first: dict[tuple[str, int], int] = {}
        for event in batch:
            tp, offset = (event.message.topic, event.message.partition), event.message.offset
            first[tp] = min(first.get(tp, offset), offset)
        continuity.restore(expected, first)
        withhold(app, [event.message for event in batch])
        metrics.BATCHES_RELEASED.labels(exc.reason).inc()
        log.warning(
            "MongoDB has not stored the batch; given back unacknowledged (read again after "
            "the rebalance or the restart)",
            reason=exc.reason,
            records=len(batch),
            partitions=sorted({f"{t}[{p}]" for t, p in expected}),
        )

    async def archive_batch(batch: list[Any]) -> None:
        started = time.perf_counter()
        records: list[tuple[Source, bytes | None]] = []
        gaps: list[tuple[tuple[str, int], Gap]] = []
        for event in batch:
            m = event.message
            source = Source(m.topic, m.partition, m.offset, m.key, _ms(m.timestamp))
            metrics.CONSUMED.labels(m.topic).inc()
            tp = (m.topic, m.partition)
            if not continuity.knows(tp):
                gap = await first_seen(tp, m.offset)
                continuity.expect(tp, m.offset)
                if gap:
                    gaps.append((tp, gap))
            gap = continuity.observe(tp, m.offset)
            if gap:
                gaps.append((tp, gap))
            records.append((source, m.value))
        for tp, gap in gaps:  # what faust skipped goes in before the batch can be acked
            await fill(tp, gap)
        await archive_records(records)
        # then the partitions' positions: the next worker's first-seen probe reads them
        ends: dict[tuple[str, int], int] = {}
        for source, _value in records:
            key = (source.topic, source.partition)
            ends[key] = max(ends.get(key, 0), source.offset + 1)
        await sink.save_positions(ends)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        # returning acks the batch: faust commits these offsets next

    async def archive_records(records: list[tuple[Source, bytes | None]]) -> None:
        received_at = datetime.now(UTC)
        docs: list[tuple[str, dict[str, Any]]] = []
        origins: list[tuple[Source, bytes | None]] = []
        for source, value in records:
            try:
                docs.append(
                    to_document(
                        source, value, received_at, movie_topic=source.topic == movie_topic_name
                    )
                )
                origins.append((source, value))
            except Unusable as exc:
                await send_dead_letter(source, value, exc)
        for index, reason in await sink.write(docs):
            source, value = origins[index]
            await send_dead_letter(source, value, Unusable(reason, "mongo_refused"))
        for source, _value in records:
            key = (source.topic, source.partition)
            next_offset[key] = max(next_offset.get(key, 0), source.offset + 1)

    async def first_seen(tp: tuple[str, int], offset: int) -> Gap | None:
        """The first record of a partition this worker sees: were the records just before it
        archived? Its position document says up to where (one small lookup, whatever the
        archive's size). A partition with none yet (a new archive, or one written before
        positions were saved: the first sighting after the upgrade) is probed the old way
        once, from the documents of the offsets just before (a collection scan on FerretDB,
        once per partition)."""
        archived_to = await sink.position(tp[0], tp[1])
        if archived_to is not None:
            # the fetch that brought this record told the consumer the partition's end
            check_not_recreated(tp, archived_to, highwater(app, tp))
            return gap_before(offset, archived_to, settings.gap_probe_records)
        window_start = max(0, offset - settings.gap_probe_records)
        collection = MOVIES if tp[0] == movie_topic_name else USER_LOGS
        archived = await sink.offsets(collection, tp[0], tp[1], window_start, offset)
        return first_gap(offset, window_start, archived)

    async def fill(tp: tuple[str, int], gap: Gap) -> None:
        found = 0
        for start in range(gap[0], gap[1], GAP_CHUNK):  # memory follows the chunk
            part = (start, min(gap[1], start + GAP_CHUNK))
            records = await asyncio.to_thread(
                read_range,
                k,
                f"{settings.app_id}-gap-reader",
                tp,
                part,
                settings.gap_read_timeout_s,
            )
            await archive_records(records)
            found += len(records)
        log.warning(
            "offsets skipped by the consumer; read again from Kafka and archived",
            topic=tp[0],
            partition=tp[1],
            start=gap[0],
            stop=gap[1],
            records=found,
        )
        metrics.GAPS.labels(tp[0]).inc()
        metrics.GAP_RECORDS.labels(tp[0]).inc(found)

    async def on_assigned(_app: Any, assigned: set[Any], **kwargs: Any) -> None:
        # a partition that stayed with this worker keeps its expectation (eager rebalancing:
        # nobody consumed it in between); one that left starts afresh when it comes back
        continuity.retain((tp.topic, tp.partition) for tp in assigned)

    # (mode's handler type wants the signal as a typed keyword; it comes in **kwargs here)
    app.on_partitions_assigned.connect(cast(Any, on_assigned))

    @app.agent(user_events, name="count")
    async def count(stream: Any) -> None:
        # Increments are summed per batch and applied once per (key, minute): one changelog
        # record per distinct key and minute instead of one per event.
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            # faust writes a table change to the changelog partition of the *current* event
            # (here: the batch's last); the key carries that partition, so a key is only
            # ever written to - and recovered from - one changelog partition.
            last = batch[-1]
            p = last.message.partition
            by_type: Counter[tuple[str, float]] = Counter()
            by_movie: Counter[tuple[int, float]] = Counter()
            for event in batch:
                try:
                    record = parse_value(event.value)
                except Unusable:
                    continue  # the archive agent dead-letters it
                event_type, movie_id = counter_keys(record)
                ts = event.message.timestamp
                minute = ts - ts % 60 + 30  # a point inside the record's 1-minute window
                if event_type:
                    by_type[(event_type, minute)] += 1
                if movie_id is not None:
                    by_movie[(movie_id, minute)] += 1
            # take_events' body runs without a current event; table writes need one (its
            # partition picks the changelog partition): make it the batch's last event
            stream._set_current_event(last)
            try:
                for (event_type, minute), n in by_type.items():
                    per_minute.relative_to(minute)[f"{event_type}@{p}"] += n
                for (movie_id, minute), n in by_movie.items():
                    per_movie.relative_to(minute)[f"{movie_id}@{p}"] += n
            finally:
                stream._set_current_event(None)

    @app.task
    async def on_start() -> None:
        await sink.ensure_indexes()
        log.info("archiver started", sources=source_names, batch_size=settings.batch_size)

    @app.timer(interval=TABLE_CLEANUP_S)
    async def expire_counters() -> None:
        # faust expires only the windows this process wrote; this drops recovered ones too
        now = time.time()
        for table in (per_minute.table, per_movie.table):
            expire_stale(table, now)

    waiting_since: dict[str, float] = {}

    @app.timer(interval=1.0)
    async def unblock_rebalance() -> None:
        let_go_stuck_messages(app, waiting_since, time.monotonic())

    @app.timer(interval=5.0)
    async def update_lag() -> None:
        for tp in app.consumer.assignment():
            if tp.topic not in source_names:
                continue
            high = highwater(app, (tp.topic, tp.partition))
            if high is None:  # not yet known right after an assignment
                continue
            done = next_offset.get((tp.topic, tp.partition))
            if done is None:
                committed = (
                    await app.consumer.committed(tp) if hasattr(app.consumer, "committed") else None
                )
                done = committed or 0
            metrics.LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - done))


def _die(message: str, exc: BaseException, code: int = 70) -> NoReturn:
    if code:
        log.critical(message, error=f"{type(exc).__name__}: {exc}", exc_info=exc)
    else:
        log.warning(message)
    logging.shutdown()
    os._exit(code)


def _ms(timestamp: float | None) -> int | None:
    return int(timestamp * 1000) if timestamp is not None else None
