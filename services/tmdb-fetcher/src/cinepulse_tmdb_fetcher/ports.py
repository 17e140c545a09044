"""The ports: what the fetch pipeline needs from the stores it writes to.

:mod:`~cinepulse_tmdb_fetcher.pipeline` depends on these protocols only, never on Kafka,
MongoDB or PostgreSQL; :mod:`~cinepulse_tmdb_fetcher.adapters` implements them and
:mod:`~cinepulse_tmdb_fetcher.bootstrap` wires the real adapters in. The order in which a
chunk is written (the delivery guarantee) is the pipeline's, so each port is one store's
operations and knows nothing of the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cinepulse_tmdb_fetcher.models import Movie


class SinkError(RuntimeError):
    """A write failed (Kafka not acknowledging, ...): nothing of the chunk was committed."""


@dataclass(frozen=True)
class MovieVersion:
    """A fetched movie as it is written: the normalised movie, TMDB's raw answer, the
    content hash (the commit marker in ``stg_movies``) and the chunk's fetch time."""

    movie: Movie
    raw: dict[str, Any]
    content_hash: str
    fetched_at: datetime

    @property
    def movie_id(self) -> int:
        return self.movie.id


class MoviePublisher(Protocol):
    """The ``movie`` topic."""

    def publish(self, versions: Sequence[MovieVersion]) -> None:
        """One record per version; returns once every record is acknowledged, raises
        :class:`SinkError` if one is not."""

    def close(self) -> None:
        """Deliver what is still buffered."""


class RawArchive(Protocol):
    """TMDB's raw answers, one document per distinct version (rewriting one is no error)."""

    def archive_movies(self, versions: Sequence[MovieVersion], run_id: str) -> None:
        """Raises :class:`SinkError` if a document is refused for another reason than
        being there already."""

    def archive_genres(self, body: dict[str, Any]) -> None: ...


class StagingStore(Protocol):
    """``stg_movies``: the latest version of each movie, with its content hash."""

    def stored_hashes(self, movie_ids: Sequence[int]) -> dict[int, str]:
        """The content hash stored for each of ``movie_ids`` that has a row."""

    def upsert(self, versions: Sequence[MovieVersion]) -> None:
        """Write the versions (and so their hashes) in one transaction."""


class WatermarkStore(Protocol):
    """Where the last committed ``/movie/changes`` window ended."""

    def read(self) -> datetime | None: ...

    def write(self, value: datetime) -> None: ...


class RunHistory(Protocol):
    """One row per run: started, then finished with its status and counts."""

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
    ) -> None: ...


@dataclass(frozen=True)
class Sinks:
    """Everything a run writes to, one port each."""

    publisher: MoviePublisher
    archive: RawArchive
    staging: StagingStore
    watermark: WatermarkStore
    runs: RunHistory
