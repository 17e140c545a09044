"""What a run counted (the summary, ``tmdb_fetch_runs.counts``) and how far it is."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from cinepulse_common.logging import get_logger

# the progress lines are the pipeline's: they keep the logger name they always had
log = get_logger("cinepulse_tmdb_fetcher.pipeline")


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
