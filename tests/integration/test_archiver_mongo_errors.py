"""The archiver's sink against the real FerretDB: a write MongoDB fails transiently is retried
until stored, never dead-lettered, and ``write`` (after which the batch's offsets are
committed) does not return meanwhile; a document FerretDB calls invalid is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.errors import BulkWriteError

from cinepulse_archiver import sink as sink_mod
from cinepulse_archiver.sink import MongoSink
from cinepulse_common.mongo import make_client
from cinepulse_common.settings import MongoSettings

pytestmark = pytest.mark.integration

NOT_PRIMARY = 10107


class FailingWrites:
    """The real collection, whose inserts fail with "not primary" while ``failing``."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.failing = True
        self.attempts = 0

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool) -> Any:
        self.attempts += 1
        if self.failing:
            raise BulkWriteError(
                {
                    "writeErrors": [
                        {"index": i, "code": NOT_PRIMARY, "errmsg": "not primary"}
                        for i in range(len(docs))
                    ],
                    "writeConcernErrors": [],
                    "nInserted": 0,
                    "upserted": [],
                }
            )
        return await self.real.insert_many(docs, ordered=ordered)


class Db:
    def __init__(self, real: Any, coll: FailingWrites) -> None:
        self.real, self.coll = real, coll

    def __getitem__(self, name: str) -> Any:
        return self.coll if name == "user_logs" else self.real[name]


def test_transient_write_errors_stall_the_batch_and_lose_nothing(
    mongo_settings: MongoSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = [("user_logs", {"_id": f"t:0:{i}", "offset": i}) for i in range(5)]
    docs.append(("user_logs", {"_id": "t:0:5", "offset": 5, "$bad": 1}))  # really invalid

    async def scenario() -> list[tuple[int, str]]:
        sink = MongoSink(mongo_settings, retry_max_s=0.05)
        real_sleep = asyncio.sleep
        monkeypatch.setattr(sink_mod.asyncio, "sleep", lambda s: real_sleep(min(s, 0.05)))
        coll = FailingWrites(sink.db["user_logs"])
        sink.db = Db(sink.db, coll)
        try:
            task = asyncio.create_task(sink.write(docs))
            await real_sleep(1.0)
            # still failing: write has not returned (so the offsets cannot be committed)
            assert not task.done()
            assert coll.attempts >= 3
            coll.failing = False
            return await asyncio.wait_for(task, 30)
        finally:
            await sink.close()

    refused = asyncio.run(scenario())
    assert [i for i, _ in refused] == [5]  # only the invalid document is dead-lettered
    with make_client(mongo_settings) as client:
        stored = sorted(d["offset"] for d in client[mongo_settings.database]["user_logs"].find())
    assert stored == [0, 1, 2, 3, 4]
