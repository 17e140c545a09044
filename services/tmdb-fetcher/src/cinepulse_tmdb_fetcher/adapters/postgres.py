"""PostgreSQL: ``stg_movies`` (:class:`~cinepulse_tmdb_fetcher.ports.StagingStore`),
``tmdb_watermarks`` (:class:`~cinepulse_tmdb_fetcher.ports.WatermarkStore`) and
``tmdb_fetch_runs`` (:class:`~cinepulse_tmdb_fetcher.ports.RunHistory`). Each call opens
its own connection: a run makes a few calls per chunk of 100 movies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from cinepulse_common.postgres import connect
from cinepulse_common.settings import PostgresSettings
from cinepulse_tmdb_fetcher.ports import MovieVersion

SOURCE_FLAG = "tmdb-fetcher"
WATERMARK = "movie_changes"


class PostgresStaging:
    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings

    def stored_hashes(self, movie_ids: Sequence[int]) -> dict[int, str]:
        with connect(self.settings) as conn:
            return dict(
                conn.execute(
                    "SELECT movie_id, content_hash FROM stg_movies WHERE movie_id = ANY(%s)",
                    (list(movie_ids),),
                ).fetchall()
            )

    def upsert(self, versions: Sequence[MovieVersion]) -> None:
        # one transaction (the connection commits on leaving the block): the chunk's hashes
        # are stored all together or not at all
        with connect(self.settings) as conn, conn.cursor() as cur:
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
                    (
                        v.movie_id,
                        v.movie.title,
                        Jsonb(v.raw),
                        v.fetched_at,
                        SOURCE_FLAG,
                        v.content_hash,
                    )
                    for v in versions
                ],
            )


class PostgresWatermark:
    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings

    def read(self) -> datetime | None:
        with connect(self.settings) as conn:
            row = conn.execute(
                "SELECT value FROM tmdb_watermarks WHERE name = %s", (WATERMARK,)
            ).fetchone()
        return row[0] if row else None

    def write(self, value: datetime) -> None:
        with connect(self.settings) as conn:
            conn.execute(
                """INSERT INTO tmdb_watermarks (name, value) VALUES (%s, %s)
                   ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()""",
                (WATERMARK, value),
            )


class PostgresRunHistory:
    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings

    def record(
        self,
        run_id: str,
        mode: str,
        status: str,
        *,
        started: datetime,
        window: tuple[Any, Any],
        counts: dict[str, Any],
        error: str | None,
    ) -> None:
        # the same row is written when the run starts ('running', no finish time) and when
        # it ends: a run that never ends stays visible as 'running'
        with connect(self.settings) as conn:
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
                    run_id,
                    mode,
                    started,
                    status,
                    status,
                    window[0],
                    window[1],
                    Jsonb(counts),
                    error,
                ),
            )
