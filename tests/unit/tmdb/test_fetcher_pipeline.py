"""tmdb-fetcher's pipeline against in-memory sinks (the ports): the order a chunk is written
in, what a rerun writes, what a failed write leaves, when the watermark moves."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from cinepulse_common.settings import KafkaSettings, MongoSettings, PostgresSettings
from cinepulse_tmdb_fetcher.client import TmdbClient
from cinepulse_tmdb_fetcher.pipeline import Counts, Fetcher
from cinepulse_tmdb_fetcher.ports import MovieVersion, SinkError, Sinks
from cinepulse_tmdb_fetcher.settings import TmdbFetcherSettings
from tests.unit.tmdb.fakes import settings as tmdb_settings


class Sink:
    """Every port at once, writing to memory and to one shared journal of calls."""

    def __init__(self, fail_publish: bool = False) -> None:
        self.journal: list[tuple[str, Any]] = []
        self.staged: dict[int, str] = {}
        self.mark: datetime | None = None
        self.fail_publish = fail_publish

    def publish(self, versions: Sequence[MovieVersion]) -> None:
        if self.fail_publish:
            raise SinkError("Kafka did not acknowledge 1 movie records")
        self.journal.append(("publish", [v.movie_id for v in versions]))

    def close(self) -> None:
        self.journal.append(("close", None))

    def archive_movies(self, versions: Sequence[MovieVersion], run_id: str) -> None:
        self.journal.append(("archive", [v.movie_id for v in versions]))

    def archive_genres(self, body: dict[str, Any]) -> None:
        self.journal.append(("genres", None))

    def stored_hashes(self, movie_ids: Sequence[int]) -> dict[int, str]:
        return {i: self.staged[i] for i in movie_ids if i in self.staged}

    def upsert(self, versions: Sequence[MovieVersion]) -> None:
        self.journal.append(("upsert", [v.movie_id for v in versions]))
        self.staged.update({v.movie_id: v.content_hash for v in versions})

    def read(self) -> datetime | None:
        return self.mark

    def write(self, value: datetime) -> None:
        self.journal.append(("watermark", value))
        self.mark = value

    def record(self, run_id: str, mode: str, status: str, **_: Any) -> None:
        self.journal.append(("run", status))

    def sinks(self) -> Sinks:
        return Sinks(publisher=self, archive=self, staging=self, watermark=self, runs=self)


def tmdb(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/3/movie/changes":
        return httpx.Response(200, json={"results": [{"id": 2}, {"id": 3}], "total_pages": 1})
    movie = re.fullmatch(r"/3/movie/(\d+)", request.url.path)
    assert movie, request.url
    return httpx.Response(200, json={"id": int(movie[1]), "title": f"Movie {movie[1]}"})


def run(sink: Sink, mode: str, *ids: int, dry_run: bool = False, chunk: int = 2) -> Counts:
    settings = TmdbFetcherSettings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),
        postgres=PostgresSettings(dsn=SecretStr("postgresql://nobody@127.0.0.1:9/none")),
        mongo=MongoSettings(url=SecretStr("mongodb://127.0.0.1:9")),
        tmdb=tmdb_settings(),
        chunk_size=chunk,
    )

    async def go() -> Counts:
        async with TmdbClient(settings.tmdb, transport=httpx.MockTransport(tmdb)) as client:
            fetcher = Fetcher(settings, client, sink.sinks(), dry_run=dry_run)
            try:
                if mode == "incremental":
                    return await fetcher.run_incremental(until=datetime(2026, 1, 3, tzinfo=UTC))
                return await fetcher.run_ids(ids)
            finally:
                fetcher.close()

    return asyncio.run(go())


def test_each_chunk_is_published_then_archived_then_staged_and_a_rerun_writes_nothing() -> None:
    sink = Sink()
    counts = run(sink, "ids", 1, 2, 3)
    assert (counts.fetched, counts.updated, counts.unchanged) == (3, 3, 0)
    assert sink.journal == [
        ("publish", [1, 2]),
        ("archive", [1, 2]),
        ("upsert", [1, 2]),
        ("publish", [3]),
        ("archive", [3]),
        ("upsert", [3]),
        ("close", None),
    ]
    sink.journal.clear()
    again = run(sink, "ids", 1, 2, 3)
    assert (again.updated, again.unchanged) == (0, 3)
    assert sink.journal == [("close", None)]  # the stored hashes match: nothing rewritten


def test_an_unacknowledged_publish_stages_nothing() -> None:
    sink = Sink(fail_publish=True)
    with pytest.raises(SinkError):
        run(sink, "ids", 1, 2)
    assert sink.staged == {}
    assert [name for name, _ in sink.journal] == ["close"]


def test_a_dry_run_writes_nothing() -> None:
    sink = Sink()
    counts = run(sink, "ids", 1, 2, 3, dry_run=True)
    assert (counts.fetched, counts.updated, counts.unchanged) == (3, 0, 3)
    assert sink.journal == [("close", None)]


def test_the_watermark_moves_only_after_each_window_is_staged() -> None:
    sink = Sink()
    sink.mark = datetime(2025, 12, 1, tzinfo=UTC)  # three 14-day windows to 2026-01-03
    counts = run(sink, "incremental")
    names = [name for name, _ in sink.journal]
    assert names == ["publish", "archive", "upsert", "watermark"] + ["watermark"] * 2 + ["close"]
    assert sink.mark == datetime(2026, 1, 3, tzinfo=UTC)
    assert (counts.discovered, counts.updated, counts.unchanged) == (6, 2, 4)
