"""The archiver's first-seen probe against the real FerretDB: read from the partition's saved
position (one small document), never from the archive itself, whose lookups FerretDB answers
by scanning the whole collection: the probe's cost must not grow with what was archived."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import monitoring

from cinepulse_archiver.documents import USER_LOGS
from cinepulse_archiver.sink import POSITIONS, MongoSink
from cinepulse_common.mongo import make_client
from cinepulse_common.settings import MongoSettings

pytestmark = pytest.mark.integration

TOPIC = "user_rating_log"


class Commands(monitoring.CommandListener):
    """The collections that the sink's commands name."""

    def __init__(self) -> None:
        self.collections: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command.get(event.command_name)
        if isinstance(name, str) and event.command_name in ("find", "update", "aggregate"):
            self.collections.append(name)

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


def _archive(settings: MongoSettings, n: int) -> None:
    with make_client(settings) as client:
        client[settings.database][USER_LOGS].insert_many(
            [
                {"_id": f"{TOPIC}:0:{o}", "topic": TOPIC, "partition": 0, "offset": o}
                for o in range(n)
            ]
        )


def test_the_probe_reads_the_saved_position_not_the_archive(
    mongo_settings: MongoSettings,
) -> None:
    _archive(mongo_settings, 3000)
    listener = Commands()

    async def scenario() -> tuple[Any, ...]:
        sink = MongoSink(mongo_settings)
        try:
            legacy = await sink.probe_gap(USER_LOGS, TOPIC, 0, 3000, 1000)  # no position yet
            await sink.save_positions({(TOPIC, 0): 3000, (TOPIC, 1): 10})
            await sink.save_positions({(TOPIC, 0): 2990})  # monotonic: never goes back
            listener.collections.clear()
            after_restart = await sink.probe_gap(USER_LOGS, TOPIC, 0, 3000, 1000)
            redelivered = await sink.probe_gap(USER_LOGS, TOPIC, 0, 2500, 1000)
            skipped = await sink.probe_gap(USER_LOGS, TOPIC, 0, 3400, 1000)
            probed = list(listener.collections)
            return legacy, after_restart, redelivered, skipped, probed
        finally:
            await sink.close()

    monitoring.register(listener)
    try:
        legacy, after_restart, redelivered, skipped, probed = asyncio.run(scenario())
    finally:
        # pymongo keeps registered listeners for clients created later: make this one inert
        listener.started = lambda event: None  # type: ignore[method-assign]
    assert legacy is None  # the archive itself says offset 2999 is there
    assert (after_restart, redelivered, skipped) == (None, None, (3000, 3400))
    assert set(probed) == {POSITIONS}, probed  # the archive was not read at all
    with make_client(mongo_settings) as client:
        positions = {d["_id"]: d["next"] for d in client[mongo_settings.database][POSITIONS].find()}
    assert positions == {f"{TOPIC}:0": 3000, f"{TOPIC}:1": 10}
