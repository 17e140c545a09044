"""The archiver's first-seen probe on the real MongoDB-protocol server (the local stack's
FerretDB), over an archive of :data:`N_DOCS` documents (about what ``make demo`` leaves), in
one run: the position lookup (one small ``archiver_positions`` document per partition, what
a worker reads when it first sees a partition) against the baseline it replaced, the lookup
of the :data:`WINDOW` documents before the partition's first record (``_id $in``), which the
archiver still makes once for a partition with no position. The archiver's own
:class:`~cinepulse_archiver.sink.MongoSink` makes both."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from pydantic import SecretStr
from pymongo import MongoClient

from bench.report import Figure, Table
from cinepulse_archiver.continuity import first_gap
from cinepulse_archiver.documents import USER_LOGS
from cinepulse_archiver.sink import MongoSink
from cinepulse_common.settings import MongoSettings
from cinepulse_devstack import Stack

#: the stack components this benchmark needs
STACK = ["mongo"]
N_DOCS = 60_000
WINDOW = 1_000  # the archiver's gap_probe_records default
REPEATS = 3
TOPIC, PARTITION = "user_rating_log", 0
DATABASE = "cinepulse_bench_probe"


def _fill(url: str) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(url)
    with client:
        client.drop_database(DATABASE)
        collection = client[DATABASE][USER_LOGS]
        for start in range(0, N_DOCS, 5_000):
            collection.insert_many(
                [
                    {
                        "_id": f"{TOPIC}:{PARTITION}:{o}",
                        "topic": TOPIC,
                        "partition": PARTITION,
                        "offset": o,
                        "record": {"event_type": "rate", "payload": {"rating": 4.0}, "n": o},
                    }
                    for o in range(start, min(N_DOCS, start + 5_000))
                ]
            )


async def _time(url: str, first: int) -> dict[str, list[float]]:
    sink = MongoSink(MongoSettings(url=SecretStr(url), database=DATABASE))
    try:
        return await _probes(sink, first)
    finally:
        await sink.close()


async def _probes(sink: MongoSink, first: int) -> dict[str, list[float]]:
    await sink.save_positions({(TOPIC, PARTITION): N_DOCS})
    timings: dict[str, list[float]] = {"documents before": [], "position": []}
    for _ in range(REPEATS):  # interleaved, so drift hits both alike
        t0 = time.perf_counter()
        start = max(0, first - WINDOW)
        found = await sink.offsets(USER_LOGS, TOPIC, PARTITION, start, first)
        assert first_gap(first, start, found) is None
        timings["documents before"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        assert await sink.position(TOPIC, PARTITION) == N_DOCS
        timings["position"].append(time.perf_counter() - t0)
    return timings


def run(stack: Stack) -> Table:
    _fill(stack.mongo.url)
    try:
        timings = asyncio.run(_time(stack.mongo.url, N_DOCS))
    finally:
        client: MongoClient[dict[str, Any]] = MongoClient(stack.mongo.url)
        with client:
            client.drop_database(DATABASE)

    table = Table(
        f"Archiver first-seen probe, {N_DOCS:,} archived documents (median of {REPEATS})",
        "probe",
    )
    rows = {}
    for name, ts in timings.items():
        seconds = statistics.median(ts)
        rows[name] = table.add(
            name,
            {
                "probes/s": Figure(1 / seconds, "probes/s", better="higher"),
                "time": Figure(seconds, "s", fmt=".3f"),
            },
            baseline=name == "documents before",
        )
    rows["position"].compare("probes/s", rows["documents before"], headline=True)
    table.notes.append(
        f"documents before: _id $in over the {WINDOW:,} offsets before the partition's first "
        "record (the probe before positions; still made once for a partition without one); "
        "position: the partition's archiver_positions document. A restart pays one probe "
        "per partition it is given"
    )
    return table
