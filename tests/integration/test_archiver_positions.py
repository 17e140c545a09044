"""The archiver's per-partition positions on the real MongoDB-protocol server: saved with
``$max`` (an upsert that never moves back), read in one lookup whatever the archive's size
(issue 21: the first-seen probe no longer reads the documents before a partition's first
record, which FerretDB answered by scanning the whole collection)."""

from __future__ import annotations

import asyncio

import pytest

from cinepulse_archiver.sink import MongoSink
from cinepulse_common.settings import MongoSettings

pytestmark = pytest.mark.integration


def test_positions_only_move_forward_and_are_read_per_partition(
    mongo_settings: MongoSettings,
) -> None:
    async def scenario() -> list[int | None]:
        sink = MongoSink(mongo_settings)
        try:
            await sink.save_positions({("user_rating_log", 0): 5, ("user_rating_log", 1): 7})
            # a worker behind another (around a rebalance) does not move a position back
            await sink.save_positions({("user_rating_log", 0): 3})
            await sink.save_positions({("user_rating_log", 1): 9})
            return [
                await sink.position("user_rating_log", 0),
                await sink.position("user_rating_log", 1),
                await sink.position("user_rating_log", 2),
                await sink.position("user_click_log", 0),
            ]
        finally:
            await sink.close()

    assert asyncio.run(scenario()) == [5, 9, None, None]
