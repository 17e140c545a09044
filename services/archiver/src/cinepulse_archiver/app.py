"""The faust app: archive every record to MongoDB, dead-letter the unusable, count live.

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
             and events per movie. No key index: the counter views read the stored
             entries of the windows they ask for, and entries older than the tables'
             ``expires`` are dropped every ``TABLE_CLEANUP_S``, recovered ones included
             (:mod:`cinepulse_archiver.counters`), so memory and a read's cost follow the
             keys counted in the kept windows, not every movie ever counted.

Table keys carry the changelog partition they are written to (``rate@2``, ``603@0``): a key
is only ever written from, and recovered from, one partition; reads sum over all keys. With
several archiver replicas each holds the counts of its own partitions: the counter views
say which partitions they cover.

Web views (faust's web server): ``/healthz``, ``/readyz``, ``/metrics`` (unless
``metrics_port`` serves it on a port of its own),
``/counters/events_per_minute?minutes=``, ``/counters/trending?minutes=&limit=``. faust's
own views that expose its internals (``/table`` - the tables and their keys' values,
``/router`` - which worker holds which key, the statistics and ``/assignment``, ``/graph``,
``/performance``) are switched off in :data:`FAUST_WEB_VIEWS_OFF`; ``/`` answers faust's
plain ``{"status": "OK"}``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, cast

import faust
from faust.web import Request, Response, View
from prometheus_client import generate_latest

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
from cinepulse_archiver.counters import expire_stale, window_counts, window_starts
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
from cinepulse_archiver.rebalance import (
    let_go_stuck_messages,
    withhold,
)
from cinepulse_archiver.settings import ArchiverSettings
from cinepulse_archiver.sink import MongoSink, WriteInterrupted
from cinepulse_common import topics
from cinepulse_common.kafka import faust_credentials
from cinepulse_common.logging import get_logger
from cinepulse_common.observability import readiness_answer

log = get_logger(__name__)

#: faust's built-in web views, each off by its own setting (faust.web.base.BLUEPRINT_FLAGS):
#: ``/table`` lists the tables and reads their keys, ``/router`` maps keys to workers'
#: URLs, the statistics (at ``/``, with ``/assignment``) show the sensors and the
#: partitions held, ``/graph`` the service tree, ``/performance`` lag and throughput.
#: Nobody needs them (the counters and /metrics are the archiver's own views) and they
#: answer anyone who can reach the port. (The archiver uses no ``@app.table_route``,
#: which would need ``/router`` across workers.)
FAUST_WEB_VIEWS_OFF: dict[str, Any] = {
    "web_tables_enabled": False,
    "web_router_enabled": False,
    "web_stats_enabled": False,
    "web_graph_enabled": False,
    "web_metrics_enabled": False,
}


#: offsets read back from Kafka at a time when filling a skipped range
GAP_CHUNK = 10_000
#: seconds between two expiries of the counters' stale windows (faust's and the archiver's)
TABLE_CLEANUP_S = 30.0


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip()]


def create_app(
    settings: ArchiverSettings, loghandlers: list[logging.Handler] | None = None
) -> faust.App:
    """The faust app. ``loghandlers`` replace faust's coloured console logging (the CLI
    passes the JSON handler of :func:`cinepulse_common.logging.configure_logging`)."""
    k = settings.kafka
    logging_options: dict[str, Any] = {}
    if loghandlers is not None:
        logging_options = {
            "loghandlers": loghandlers,
            "logging_config": {
                "version": 1,
                "disable_existing_loggers": False,
                "root": {"level": settings.log_level, "handlers": []},
            },
        }
    app = faust.App(
        settings.app_id,
        broker=broker_urls(k.bootstrap_servers),
        broker_client_id=k.client_id,
        broker_credentials=faust_credentials(k),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        **FAUST_WEB_VIEWS_OFF,
        datadir=str(settings.data_dir),
        topic_replication_factor=settings.replication_factor,
        # the tables' changelog topics: faust requires as many partitions as their source
        # topics (a mismatch crash-looped the counters on the real node, 6 against 3)
        topic_partitions=settings.source_partitions,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=TABLE_CLEANUP_S,
        **logging_options,
        # a crashed worker's partitions move on after this, not faust's default 60 s
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 4),
    )

    movie_topic_name = k.topic(topics.MOVIE)
    source_names = [k.topic(t) for t in (*topics.USER_EVENT_TOPICS, topics.MOVIE)]
    sources = app.topic(*source_names, key_type=bytes, value_type=bytes)
    user_events = app.topic(
        *(k.topic(t) for t in topics.USER_EVENT_TOPICS), key_type=bytes, value_type=bytes
    )
    dlq = app.topic(k.topic(topics.DEAD_LETTER), key_type=bytes, value_type=bytes)

    def must_let_go() -> str | None:
        """Why the archive agent must give its batch back now, if it must: faust's rebalance
        and its stop wait for the agent to finish the batch, and a MongoDB outage must not
        hold them (``app.rebalancing`` is set as soon as the partitions are revoked)."""
        if app.should_stop:
            return "stopping"
        if app.rebalancing:
            return "rebalance"
        return None

    sink = MongoSink(
        settings.mongo,
        settings.mongo_retry_max_s,
        should_yield=must_let_go,
        op_timeout_s=settings.mongo_op_timeout_s,
    )
    next_offset: dict[tuple[str, int], int] = {}
    continuity = Continuity()

    # Any: faust's WindowWrapperT stubs lack relative_to(), which the class has. No
    # key_index: faust never prunes one (see cinepulse_archiver.counters)
    per_minute: Any = app.Table(
        "events_per_minute", default=int, key_type=str, value_type=int, partitions=None
    ).tumbling(60, expires=timedelta(minutes=settings.counter_minutes))
    per_movie: Any = app.Table(
        "movie_events_per_minute", default=int, key_type=str, value_type=int, partitions=None
    ).tumbling(60, expires=timedelta(minutes=max(settings.trending_minutes, 60)))

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

    def _partitions() -> list[int]:
        return sorted(
            {tp.partition for tp in app.consumer.assignment() if tp.topic in source_names}
        )

    @app.page("/healthz")
    async def healthz(self: View, request: Request) -> Response:
        return self.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(self: View, request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            await sink.ping()
            checks["mongo"] = "ok"
        except Exception as exc:  # readiness reports any failure as not ready
            checks["mongo"] = f"error: {type(exc).__name__}: {exc}"
        try:  # before the consumer has started, assignment() raises (ConsumerNotStarted)
            assigned = bool(app.consumer.assignment())
            checks["kafka"] = "ok" if assigned else "error: no partition assigned"
        except Exception as exc:  # readiness reports any failure as not ready
            checks["kafka"] = f"error: {type(exc).__name__}: {exc}"
        # {"status": ..., "checks": {"mongo": "ok" | "down", ...}}; why is logged, not answered
        body, status = readiness_answer(checks)
        return self.json(body, status=status)

    if not settings.metrics_port:  # else /metrics is on its own port only (__main__)

        @app.page("/metrics")
        async def prometheus(self: View, request: Request) -> Response:
            # aiohttp refuses a charset inside content_type; exposition format 0.0.4 is UTF-8
            return self.bytes(generate_latest(), content_type="text/plain; version=0.0.4")

    def _int_param(request: Request, name: str, default: int, hi: int) -> int:
        raw = request.query.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= hi:
            raise ValueError(f"{name} must be an integer from 1 to {hi}")
        return int(raw)

    def _minute_start(ts: float) -> str:
        return datetime.fromtimestamp(ts - ts % 60, UTC).isoformat()

    @app.page("/counters/events_per_minute")
    async def events_per_minute(self: View, request: Request) -> Response:
        try:
            minutes = _int_param(request, "minutes", 15, settings.counter_minutes)
        except ValueError as exc:
            return self.json({"detail": str(exc)}, status=422)
        table = per_minute.table
        by_window = window_counts(table.data.items(), window_starts(table, time.time(), minutes))
        # every event type counted in these minutes, 0 in a minute without it
        names = sorted(set().union(*by_window.values()))
        series = [
            {"minute": _minute_start(start), "counts": {name: counts[name] for name in names}}
            for start, counts in by_window.items()
        ]
        return self.json({"minutes": series, "partitions": _partitions()})

    @app.page("/counters/trending")
    async def trending(self: View, request: Request) -> Response:
        try:
            minutes = _int_param(
                request, "minutes", settings.trending_minutes, max(settings.trending_minutes, 60)
            )
            limit = _int_param(request, "limit", 10, 1000)
        except ValueError as exc:
            return self.json({"detail": str(exc)}, status=422)
        table = per_movie.table
        totals: Counter[int] = Counter()
        for counts in window_counts(
            table.data.items(), window_starts(table, time.time(), minutes)
        ).values():
            for movie, n in counts.items():
                totals[int(movie)] += n
        top = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return self.json(
            {
                "minutes": minutes,
                "movies": [{"movie_id": m, "events": n} for m, n in top],
                "partitions": _partitions(),
            }
        )

    return app


def _die(message: str, exc: BaseException, code: int = 70) -> NoReturn:
    if code:
        log.critical(message, error=f"{type(exc).__name__}: {exc}", exc_info=exc)
    else:
        log.warning(message)
    logging.shutdown()
    os._exit(code)


def _ms(timestamp: float | None) -> int | None:
    return int(timestamp * 1000) if timestamp is not None else None
