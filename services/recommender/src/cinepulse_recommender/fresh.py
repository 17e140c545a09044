"""A user's history read from the facts at request time, so that their latest events change
what they are recommended without retraining (issue 23).

* :data:`HISTORY` reads one user's events (each fact table's ``(user_id, occurred_at)``
  index), since the start of the training window (``window_days``) and with no end.
* :func:`weigh` turns them into that user's weighted pairs exactly as training does
  (:func:`~cinepulse_recommender.interactions.event_weights`, summed per movie, capped at
  ``max_pair``).
* :class:`TtlCache` keeps the histories read for ``history.ttl_s`` seconds, at most
  ``history.cache_size`` users (least recently used first out). It is a few lines rather
  than cachetools, which the recommender's image does not install.

How a version scores a history is :meth:`~cinepulse_recommender.recommend.Recommender.recommend`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from cinepulse_recommender.interactions import Events, event_weights
from cinepulse_recommender.settings import WeightSettings

#: one user's events since ``%(since)s``, in the shape of the trainer's EVENTS
HISTORY = """
SELECT movie_id, 'rate' AS kind, rating::float8 AS value, false AS completed
  FROM fact_rating WHERE user_id = %(user)s AND occurred_at >= %(since)s
UNION ALL
SELECT movie_id, 'watch', completion_ratio::float8, completed
  FROM fact_watch WHERE user_id = %(user)s AND occurred_at >= %(since)s
UNION ALL
SELECT movie_id, 'comment', NULL, false
  FROM fact_comment WHERE user_id = %(user)s AND occurred_at >= %(since)s
UNION ALL
SELECT movie_id, 'click', NULL, false
  FROM fact_click WHERE user_id = %(user)s AND occurred_at >= %(since)s
"""


@dataclass
class History:
    """One user's weighted pairs (movie ids, sorted; weights > 0), read at ``read_at``.
    ``views`` memoises, per model version, the pairs over that version's item positions and
    what was scored of them (a cached history is scored once)."""

    movie_ids: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float32]
    read_at: float = 0.0
    views: dict[Any, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.movie_ids)


def weigh(rows: Sequence[tuple[Any, ...]], w: WeightSettings) -> History:
    """``(movie_id, kind, value, completed)`` rows -> the user's pairs, as training makes
    them (events of weight 0 make no pair)."""
    n = len(rows)
    events = Events(
        user_id=np.zeros(n, dtype=np.str_),
        movie_id=np.array([int(r[0]) for r in rows], dtype=np.int64),
        kind=np.array([r[1] for r in rows], dtype=np.str_),
        value=np.array([np.nan if r[2] is None else float(r[2]) for r in rows], dtype=np.float64),
        completed=np.array([bool(r[3]) for r in rows], dtype=np.bool_),
        at=np.zeros(n, dtype=np.float64),
    )
    weight = event_weights(events, w)
    keep = weight > 0
    movies, inverse = np.unique(events.movie_id[keep], return_inverse=True)
    summed = np.bincount(inverse, weights=weight[keep], minlength=len(movies))
    return History(
        movies.astype(np.int64), np.minimum(summed, w.max_pair).astype(np.float32), time.time()
    )


K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A bounded cache whose entries expire ``ttl`` seconds after they were put (``ttl``
    0: nothing is kept). Not thread-safe: the event loop's thread only."""

    def __init__(
        self, maxsize: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.maxsize, self.ttl, self.clock = maxsize, ttl, clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = (self.clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
