"""The fetch pipeline: which movies (full, incremental, ids), fetch them, write them.

Writes happen per chunk, in this order: Kafka ``movie`` (acknowledged), MongoDB
``raw.movies`` (idempotent ``_id``), then ``stg_movies`` with the content hash, in one
transaction. The hash is the commit marker: a movie whose stored hash equals the fetched
content's is *unchanged* and is not written again (no duplicate record in Kafka on a
rerun); a movie without it is written (no gap). The incremental watermark moves only after
a whole ``/movie/changes`` window is committed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from confluent_kafka import KafkaError, Message
from psycopg.types.json import Jsonb
from pymongo.errors import BulkWriteError

from cinepulse_common import topics
from cinepulse_common.kafka import make_producer
from cinepulse_common.logging import get_logger
from cinepulse_common.mongo import make_client
from cinepulse_common.postgres import connect
from cinepulse_tmdb_fetcher import metrics
from cinepulse_tmdb_fetcher.client import TmdbClient, TmdbNotFound
from cinepulse_tmdb_fetcher.models import Malformed, Movie, normalise
from cinepulse_tmdb_fetcher.settings import TmdbFetcherSettings

log = get_logger(__name__)

SOURCE_FLAG = "tmdb-fetcher"
WATERMARK = "movie_changes"
EARLIEST = date(1870, 1, 1)  # before the first film: the lower bound of a full load


class SinkError(RuntimeError):
    """A write failed (Kafka not acknowledging, ...): nothing of the chunk was committed."""


@dataclass
class Counts:
    discovered: int = 0
    fetched: int = 0
    updated: int = 0
    unchanged: int = 0
    not_found: int = 0
    malformed: int = 0
    repaired: int = 0
    not_found_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["not_found_ids"] = d["not_found_ids"][:100]
        return d


@dataclass
class Fetched:
    movie_id: int
    movie: Movie | None = None
    raw: dict[str, Any] | None = None
    outcome: str = "fetched"


class Progress:
    """Counts and rate in a log line every few seconds; a bar on a terminal."""

    def __init__(self, what: str, every_s: float = 5.0) -> None:
        self.what = what
        self.every_s = every_s
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self._last = self.started
        self._bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=0, unit="movie", desc=what, file=sys.stderr)

    def add_total(self, n: int) -> None:
        self.total += n
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def advance(self, n: int, counts: Counts) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        now = time.monotonic()
        if now - self._last >= self.every_s or self.done == self.total:
            self._last = now
            rate = self.done / max(now - self.started, 1e-9)
            log.info(
                "progress",
                stage=self.what,
                done=self.done,
                total=self.total,
                per_s=round(rate, 1),
                updated=counts.updated,
                unchanged=counts.unchanged,
                not_found=counts.not_found,
                malformed=counts.malformed,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Fetcher:
    def __init__(
        self, settings: TmdbFetcherSettings, client: TmdbClient, *, dry_run: bool = False
    ) -> None:
        self.settings = settings
        self.client = client
        self.dry_run = dry_run
        self.counts = Counts()
        self.run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        self._producer: Any = None
        self._topic = settings.kafka.topic(topics.MOVIE)

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
        hashes = {f.movie_id: f.movie.content_hash() for f in fetched if f.movie}
        with connect(self.settings.postgres) as conn:
            stored = dict(
                conn.execute(
                    "SELECT movie_id, content_hash FROM stg_movies WHERE movie_id = ANY(%s)",
                    (list(hashes),),
                ).fetchall()
            )
        changed = [f for f in fetched if f.movie and stored.get(f.movie_id) != hashes[f.movie_id]]
        if not changed:
            return 0
        self._publish(changed, hashes, now)
        self._archive(changed, hashes, now)
        with connect(self.settings.postgres) as conn, conn.cursor() as cur:
            cur.executemany(
                """
                INSERT INTO stg_movies (movie_id, title, raw, fetched_at, source_flag, content_hash)
                VALUES (%s, %s, %s, %s, %s, %s)
                ON CONFLICT (movie_id) DO UPDATE SET
                    title = EXCLUDED.title, raw = EXCLUDED.raw, fetched_at = EXCLUDED.fetched_at,
                    source_flag = EXCLUDED.source_flag, content_hash = EXCLUDED.content_hash,
                    loaded_at = now()
                """,
                [
                    (f.movie_id, f.movie.title, Jsonb(f.raw), now, SOURCE_FLAG, hashes[f.movie_id])
                    for f in changed
                    if f.movie
                ],
            )
        return len(changed)

    def _publish(self, changed: list[Fetched], hashes: dict[int, str], now: datetime) -> None:
        if self._producer is None:
            self._producer = make_producer(self.settings.kafka)
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(f"{err.name()}: {err.str()}")

        for f in changed:
            assert f.movie is not None
            record = f.movie.model_dump(mode="json") | {
                "fetched_at": now.isoformat(),
                "content_hash": hashes[f.movie_id],
                "source": "tmdb",
            }
            self._producer.produce(
                self._topic,
                key=str(f.movie_id).encode(),
                value=json.dumps(record, ensure_ascii=False).encode(),
                on_delivery=on_delivery,
            )
            self._producer.poll(0)
        left = self._producer.flush(60)
        if left or errors:
            raise SinkError(
                f"Kafka did not acknowledge {left + len(errors)} movie records"
                + (f": {errors[0]}" if errors else "")
            )

    def _archive(self, changed: list[Fetched], hashes: dict[int, str], now: datetime) -> None:
        docs = [
            {
                "_id": f"tmdb:{f.movie_id}:{hashes[f.movie_id][:16]}",
                "source": "tmdb-api",
                "movie_id": f.movie_id,
                "fetched_at": now,
                "content_hash": hashes[f.movie_id],
                "endpoint": f"/3/movie/{f.movie_id}?append_to_response=keywords,credits",
                "response": f.raw,
                "run_id": self.run_id,
            }
            for f in changed
        ]
        with make_client(self.settings.mongo) as client:
            try:
                client[self.settings.mongo.database]["movies"].insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                other = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
                if other:
                    raise SinkError(f"MongoDB refused movies: {other[0].get('errmsg')}") from None

    def archive_genres(self, body: dict[str, Any]) -> None:
        if self.dry_run:
            return
        h = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with make_client(self.settings.mongo) as client:
            client[self.settings.mongo.database]["genres"].update_one(
                {"_id": f"tmdb-genres:{h[:16]}"},
                {"$setOnInsert": {"response": body, "fetched_at": datetime.now(UTC)}},
                upsert=True,
            )

    # --- runs and the watermark ----------------------------------------------------------------
    def watermark(self) -> datetime | None:
        with connect(self.settings.postgres) as conn:
            row = conn.execute(
                "SELECT value FROM tmdb_watermarks WHERE name = %s", (WATERMARK,)
            ).fetchone()
        return row[0] if row else None

    def set_watermark(self, value: datetime) -> None:
        with connect(self.settings.postgres) as conn:
            conn.execute(
                """INSERT INTO tmdb_watermarks (name, value) VALUES (%s, %s)
                   ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()""",
                (WATERMARK, value),
            )

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
        with connect(self.settings.postgres) as conn:
            conn.execute(
                """
                INSERT INTO tmdb_fetch_runs
                    (run_id, mode, started_at, finished_at, status, window_start, window_end,
                     counts, error)
                VALUES (%s, %s, %s, CASE WHEN %s = 'running' THEN NULL ELSE now() END,
                        %s, %s, %s, %s, %s)
                ON CONFLICT (run_id) DO UPDATE SET
                    finished_at = EXCLUDED.finished_at, status = EXCLUDED.status,
                    window_end = EXCLUDED.window_end, counts = EXCLUDED.counts,
                    error = EXCLUDED.error
                """,
                (
                    self.run_id,
                    mode,
                    started,
                    status,
                    status,
                    window[0],
                    window[1],
                    Jsonb(self.counts.as_dict()),
                    error,
                ),
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
        self.archive_genres(genres)
        ids = await self.discover_all()
        self.counts.discovered = len(ids)
        log.info("discover done", movies=len(ids), genres=len(genres.get("genres") or []))
        await self.run_ids(ids)
        if not self.dry_run and self.watermark() is None:
            # changes made while the full load ran are picked up by the next incremental
            self.set_watermark(started)
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
                    self.set_watermark(end)  # only once the window is committed
                start = end
        finally:
            progress.close()
        return self.counts

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)
