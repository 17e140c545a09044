"""The fetch pipeline: which movies (full, incremental, ids), fetch them, write them.

Writes happen per chunk, in this order: Kafka ``movie`` (acknowledged), MongoDB
``raw.movies`` (idempotent ``_id``), then ``stg_movies`` with the content hash, in one
transaction. The hash is the commit marker: a movie whose stored hash equals the fetched
content's is *unchanged* and is not written again (no duplicate record in Kafka on a
rerun); a movie without it is written (no gap). The incremental watermark moves only after
a whole ``/movie/changes`` window is committed.

The stores are reached through the ports of :mod:`~cinepulse_tmdb_fetcher.ports` only (the
adapters are in :mod:`~cinepulse_tmdb_fetcher.adapters`, wired in by
:mod:`~cinepulse_tmdb_fetcher.bootstrap`); the order above is kept here, not in them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cinepulse_common.logging import get_logger
from cinepulse_tmdb_fetcher import metrics
from cinepulse_tmdb_fetcher.client import TmdbClient, TmdbNotFound
from cinepulse_tmdb_fetcher.models import Malformed, Movie, normalise
from cinepulse_tmdb_fetcher.ports import MovieVersion, SinkError, Sinks
from cinepulse_tmdb_fetcher.progress import Counts, Progress
from cinepulse_tmdb_fetcher.settings import TmdbFetcherSettings

# Counts and SinkError live in progress and ports now; they stay importable from here, where
# tests and scripts have always found them
__all__ = ["Counts", "Fetched", "Fetcher", "Progress", "SinkError", "chunks"]

log = get_logger(__name__)

EARLIEST = date(1870, 1, 1)  # before the first film: the lower bound of a full load


@dataclass
class Fetched:
    movie_id: int
    movie: Movie | None = None
    raw: dict[str, Any] | None = None
    outcome: str = "fetched"


def chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Fetcher:
    """Finds the movies of a run, fetches them from TMDB and writes them to ``sinks`` in
    the order that makes a rerun neither duplicate nor miss one (see the module's doc)."""

    def __init__(
        self,
        settings: TmdbFetcherSettings,
        client: TmdbClient,
        sinks: Sinks,
        *,
        dry_run: bool = False,
    ) -> None:
        self.settings = settings
        self.client = client
        self.sinks = sinks
        self.dry_run = dry_run
        self.counts = Counts()
        self.run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"

    # --- which movies ------------------------------------------------------------------------
    async def discover_all(self) -> list[int]:
        """Every movie id discover can list, walking release-date windows so that no window
        needs more than ``page_cap`` pages (TMDB refuses pages past 500)."""
        found: dict[int, None] = {}
        cap = self.settings.tmdb.page_cap

        async def walk(lo: date, hi: date) -> None:
            first = await self.client.discover(1, lo.isoformat(), hi.isoformat())
            total = int(first.get("total_results") or 0)
            per_page = max(len(first.get("results") or []), 1)
            needed = -(-total // per_page)
            # pages actually served: TMDB stops at page 500 (some servers also report
            # total_pages already capped)
            pages = min(int(first.get("total_pages") or 1), cap)
            if needed > pages and lo < hi:
                mid = lo + (hi - lo) // 2
                await walk(lo, mid)
                await walk(mid + timedelta(days=1), hi)
                return
            if needed > pages:
                log.warning(
                    "one day has more movies than the page cap serves", day=str(lo), movies=total
                )
            for item in first.get("results") or []:
                found.setdefault(int(item["id"]), None)
            rest = await asyncio.gather(
                *(
                    self.client.discover(p, lo.isoformat(), hi.isoformat())
                    for p in range(2, pages + 1)
                )
            )
            for page in rest:
                for item in page.get("results") or []:
                    found.setdefault(int(item["id"]), None)

        await walk(EARLIEST, datetime.now(UTC).date() + timedelta(days=365))
        return list(found)

    async def changed_ids(self, start: date, end: date) -> list[int]:
        first = await self.client.changes(start.isoformat(), end.isoformat(), 1)
        pages = min(int(first.get("total_pages") or 1), self.settings.tmdb.page_cap)
        rest = await asyncio.gather(
            *(
                self.client.changes(start.isoformat(), end.isoformat(), p)
                for p in range(2, pages + 1)
            )
        )
        ids: dict[int, None] = {}
        for page in (first, *rest):
            for item in page.get("results") or []:
                if (
                    isinstance(item, dict)
                    and isinstance(item.get("id"), int)
                    and not item.get("adult")
                ):
                    ids.setdefault(item["id"], None)
        return list(ids)

    # --- fetch one ---------------------------------------------------------------------------
    async def _fetch(self, movie_id: int) -> Fetched:
        try:
            raw = await self.client.movie(movie_id)
        except TmdbNotFound as exc:
            log.warning("movie not found; skipped", movie_id=movie_id, reason=str(exc))
            return Fetched(movie_id, outcome="not_found")
        try:
            movie, repairs = normalise(raw)
        except Malformed as exc:
            log.warning("malformed movie; skipped", movie_id=movie_id, reason=str(exc))
            return Fetched(movie_id, raw=raw, outcome="malformed")
        if movie.id != movie_id:
            log.warning("movie answered with another id; skipped", asked=movie_id, got=movie.id)
            return Fetched(movie_id, raw=raw, outcome="malformed")
        return Fetched(movie_id, movie, raw, outcome="repaired" if repairs else "fetched")

    async def process(self, ids: Sequence[int], progress: Progress) -> None:
        progress.add_total(len(ids))
        for chunk in chunks(ids, self.settings.chunk_size):
            async with asyncio.TaskGroup() as tg:  # the first hard failure cancels the rest
                tasks = [tg.create_task(self._fetch(i)) for i in chunk]
            results = [t.result() for t in tasks]
            good: list[Fetched] = []
            for r in results:
                if r.outcome == "not_found":
                    self.counts.not_found += 1
                    self.counts.not_found_ids.append(r.movie_id)
                elif r.outcome == "malformed":
                    self.counts.malformed += 1
                else:
                    self.counts.fetched += 1
                    self.counts.repaired += r.outcome == "repaired"
                    good.append(r)
                metrics.MOVIES.labels(r.outcome).inc()
            if self.dry_run:
                self.counts.unchanged += len(good)
            else:
                updated = await asyncio.to_thread(self._commit, good)
                self.counts.updated += updated
                self.counts.unchanged += len(good) - updated
                metrics.MOVIES.labels("updated").inc(updated)
                metrics.MOVIES.labels("unchanged").inc(len(good) - updated)
            progress.advance(len(chunk), self.counts)

    # --- write a chunk -----------------------------------------------------------------------
    def _commit(self, fetched: list[Fetched]) -> int:
        """Write the changed movies of a chunk; returns how many were changed."""
        if not fetched:
            return 0
        now = datetime.now(UTC)
        versions: list[MovieVersion] = []
        for f in fetched:
            assert f.movie is not None and f.raw is not None  # only fetched movies get here
            versions.append(MovieVersion(f.movie, f.raw, f.movie.content_hash(), now))
        stored = self.sinks.staging.stored_hashes(list(dict.fromkeys(v.movie_id for v in versions)))
        changed = [v for v in versions if stored.get(v.movie_id) != v.content_hash]
        if not changed:
            return 0
        # stg_movies last: its hash marks a movie written only once Kafka has acknowledged the
        # record (publish raises otherwise) and MongoDB holds the raw answer; a crash before
        # leaves the movie unmarked, so the rerun writes it again (no gap)
        self.sinks.publisher.publish(changed)
        self.sinks.archive.archive_movies(changed, self.run_id)
        self.sinks.staging.upsert(changed)
        return len(changed)

    # --- runs and the watermark ----------------------------------------------------------------
    def watermark(self) -> datetime | None:
        return self.sinks.watermark.read()

    def record_run(
        self,
        mode: str,
        status: str,
        *,
        started: datetime,
        window: tuple[Any, Any] = (None, None),
        error: str | None = None,
    ) -> None:
        if self.dry_run:
            return
        self.sinks.runs.record(
            self.run_id,
            mode,
            status,
            started=started,
            window=window,
            counts=self.counts.as_dict(),
            error=error,
        )

    # --- the modes ---------------------------------------------------------------------------
    async def run_ids(self, ids: Sequence[int]) -> Counts:
        progress = Progress("movies")
        try:
            await self.process(list(dict.fromkeys(ids)), progress)
        finally:
            progress.close()
        return self.counts

    async def run_full(self) -> Counts:
        started = datetime.now(UTC)
        genres = await self.client.genres()
        if not self.dry_run:
            self.sinks.archive.archive_genres(genres)
        ids = await self.discover_all()
        self.counts.discovered = len(ids)
        log.info("discover done", movies=len(ids), genres=len(genres.get("genres") or []))
        await self.run_ids(ids)
        if not self.dry_run and self.watermark() is None:
            # changes made while the full load ran are picked up by the next incremental
            self.sinks.watermark.write(started)
        return self.counts

    async def run_incremental(self, until: datetime | None = None) -> Counts:
        end_all = until or datetime.now(UTC)
        start = self.watermark() or end_all - timedelta(days=self.settings.incremental_default_days)
        step = timedelta(days=self.settings.tmdb.changes_window_days)
        progress = Progress("changed movies")
        try:
            while start < end_all:
                end = min(start + step, end_all)
                ids = await self.changed_ids(start.date(), end.date())
                self.counts.discovered += len(ids)
                log.info(
                    "changes window", start=start.isoformat(), end=end.isoformat(), movies=len(ids)
                )
                await self.process(ids, progress)
                if not self.dry_run:
                    self.sinks.watermark.write(end)  # only once the window is committed
                start = end
        finally:
            progress.close()
        return self.counts

    def close(self) -> None:
        self.sinks.publisher.close()
