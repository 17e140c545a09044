"""From events to (user, movie) pairs: pure functions over numpy arrays, no I/O.

Each event gets a weight from its type (:class:`~cinepulse_recommender.settings.WeightSettings`):
a rating ``rating / 5 * weights.rating`` (ratings under ``min_rating`` dropped), a completed
watch ``watch_completed``, an unfinished one ``completion_ratio * watch_partial``, a comment
``comment``, a click ``click``. A user's events on one movie make one *pair*: the sum of
their weights (capped at ``max_pair``), timed by its *first* event (when the user came to
the movie; the split orders pairs by it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from cinepulse_recommender.settings import WeightSettings

EVENT_KINDS = ("rate", "watch", "comment", "click")


@dataclass(frozen=True)
class Events:
    """Events as parallel arrays (one entry per event). ``value``: the rating for ``rate``,
    the completion ratio for ``watch``, NaN otherwise; ``completed`` only means something
    for ``watch``; ``at``: occurred_at as Unix seconds."""

    user_id: npt.NDArray[np.str_]
    movie_id: npt.NDArray[np.int64]
    kind: npt.NDArray[np.str_]
    value: npt.NDArray[np.float64]
    completed: npt.NDArray[np.bool_]
    at: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.user_id)


def event_weights(events: Events, w: WeightSettings) -> npt.NDArray[np.float64]:
    """The weight of each event (0 for an event that says nothing, e.g. a low rating under
    ``min_rating`` or an unknown kind)."""
    kind, value = events.kind, events.value
    out = np.zeros(len(events), dtype=np.float64)
    rate = kind == "rate"
    out[rate] = np.where(value[rate] >= w.min_rating, value[rate] / 5.0 * w.rating, 0.0)
    watch = kind == "watch"
    done = watch & events.completed
    part = watch & ~events.completed
    out[done] = w.watch_completed
    out[part] = np.clip(np.nan_to_num(value[part]), 0.0, 1.0) * w.watch_partial
    out[kind == "comment"] = w.comment
    out[kind == "click"] = w.click
    return out


@dataclass(frozen=True)
class Pairs:
    """(user, movie) pairs over index spaces: ``user_ids[user[i]]`` met ``item_ids[item[i]]``
    with ``weight[i]``, first at ``at[i]``. Sorted by user, then time, then item."""

    user_ids: npt.NDArray[np.str_]
    item_ids: npt.NDArray[np.int64]
    user: npt.NDArray[np.int64]
    item: npt.NDArray[np.int64]
    weight: npt.NDArray[np.float64]
    at: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.user)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.user_ids), len(self.item_ids)

    def subset(self, mask: npt.NDArray[np.bool_]) -> Pairs:
        """The same index spaces, only the pairs where ``mask`` holds."""
        return Pairs(
            self.user_ids,
            self.item_ids,
            self.user[mask],
            self.item[mask],
            self.weight[mask],
            self.at[mask],
        )

    def matrix(self, values: npt.NDArray[np.float64] | None = None) -> sp.csr_matrix:
        """users x items CSR of the weights (or ``values``)."""
        data = self.weight if values is None else values
        return sp.csr_matrix(
            (data.astype(np.float32), (self.user, self.item)), shape=self.shape, dtype=np.float32
        )


def to_pairs(
    events: Events, w: WeightSettings, item_ids: npt.NDArray[np.int64] | None = None
) -> Pairs:
    """Aggregate weighted events into pairs. ``item_ids`` fixes the item index space (e.g.
    every movie of the catalogue, with or without events); movies of events missing from it
    are appended. Events of weight 0 make no pair."""
    weight = event_weights(events, w)
    keep = weight > 0
    users, movies, weight, at = (
        events.user_id[keep],
        events.movie_id[keep],
        weight[keep],
        events.at[keep],
    )
    user_ids, user = np.unique(users, return_inverse=True)
    base = np.asarray(item_ids if item_ids is not None else [], dtype=np.int64)
    extra = np.setdiff1d(movies, base)
    all_items = np.concatenate([base, extra])
    order = np.argsort(all_items, kind="stable")
    item = order[np.searchsorted(all_items, movies, sorter=order)] if len(movies) else movies
    # one row per (user, item): summed weight (capped), earliest time
    key = user.astype(np.int64) * len(all_items) + item
    uniq, inv = np.unique(key, return_inverse=True)
    pair_weight = np.minimum(np.bincount(inv, weights=weight), w.max_pair)
    pair_at = np.full(len(uniq), np.inf)
    np.minimum.at(pair_at, inv, at)
    p_user, p_item = uniq // max(len(all_items), 1), uniq % max(len(all_items), 1)
    srt = np.lexsort((p_item, pair_at, p_user))
    return Pairs(
        user_ids=user_ids,
        item_ids=all_items,
        user=p_user[srt].astype(np.int64),
        item=p_item[srt].astype(np.int64),
        weight=pair_weight[srt],
        at=pair_at[srt],
    )
