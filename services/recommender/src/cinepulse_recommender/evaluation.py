"""The evaluation protocol: pure functions, the same for the model and every baseline.

* **Split** (:func:`time_split`): each user's pairs in the order the user came to them; the
  latest ``test_fraction`` of them (at least one) are held out. Users with fewer than
  ``min_user_pairs`` pairs stay whole in the training part. The validation split that tunes
  hyper-parameters is the same split applied to the training part, so the test part is
  never looked at before the final measurement.
* **Candidates**: the items with at least one training pair (what any model could know).
* **Ranking** (:func:`top_k`): a user's items by score, without the items the user already
  has in the training part and without non-candidates.
* **Relevance**: a user's held-out items that are candidates and were not seen in training.
  Users without any are not evaluated; every model is evaluated on the same users.
* **Metrics** at k: precision = hits / k; recall = hits / relevant; NDCG = DCG / ideal DCG
  with binary gains, DCG = sum over hits of 1 / log2(rank + 1) (ranks from 1). Each is the
  mean over evaluated users; a ratio of two models' NDCG gets a paired bootstrap interval
  over users (:func:`bootstrap_ratio`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from cinepulse_recommender.interactions import Pairs

#: scores of a batch of users (indices) over every item: shape (len(users), n_items)
Scorer = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.floating]]


@dataclass(frozen=True)
class Split:
    train: Pairs
    test: Pairs

    @property
    def candidates(self) -> npt.NDArray[np.bool_]:
        """Items with at least one training pair."""
        mask = np.zeros(self.train.shape[1], dtype=bool)
        mask[self.train.item] = True
        return mask


def time_split(pairs: Pairs, test_fraction: float, min_user_pairs: int) -> Split:
    """Hold out each user's latest pairs (``pairs`` sorted by user then time, as
    :func:`~cinepulse_recommender.interactions.to_pairs` makes them)."""
    n_users = pairs.shape[0]
    counts = np.bincount(pairs.user, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(pairs)) - starts[pairs.user]
    n_test = np.maximum(1, np.floor(counts * test_fraction)).astype(np.int64)
    n_test[counts < min_user_pairs] = 0
    held = position >= (counts - n_test)[pairs.user]
    return Split(train=pairs.subset(~held), test=pairs.subset(held))


def best(scores: npt.NDArray[np.floating], k: int) -> list[npt.NDArray[np.int64]]:
    """The indices of each row's k best finite scores, best first (ties: lower index first).
    Masked entries are ``-inf``."""
    n = scores.shape[1]
    kk = min(k, n)
    if kk <= 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(scores.shape[0])]
    if kk < n:
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape)
    values = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -values), axis=1)
    part = np.take_along_axis(part, order, axis=1)
    finite = np.isfinite(np.take_along_axis(values, order, axis=1))
    return [row[ok].astype(np.int64) for row, ok in zip(part, finite, strict=True)]


def best_row(scores: npt.NDArray[np.floating], k: int) -> npt.NDArray[np.int64]:
    """:func:`best` of one row (a 1-d array): the serving hot path, without 2-d overhead."""
    n = len(scores)
    kk = min(k, n)
    if kk <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, kk - 1)[:kk] if kk < n else np.arange(n)
    part = part[np.lexsort((part, -scores[part]))]
    return part[np.isfinite(scores[part])].astype(np.int64)


def top_k(
    scores: npt.NDArray[np.floating],
    exclude: sp.csr_matrix,
    candidates: npt.NDArray[np.bool_],
    k: int,
) -> list[npt.NDArray[np.int64]]:
    """The k best items of each row of ``scores`` (best first; ties: lower index first),
    skipping the row's items in ``exclude`` (CSR with the same rows) and non-candidates."""
    scores = np.array(scores, dtype=np.float64)  # a copy: masked below
    scores[:, ~candidates] = -np.inf
    rows, cols = exclude.nonzero()
    scores[rows, cols] = -np.inf
    return best(scores, k)


def user_metrics(
    ranked: npt.NDArray[np.int64], relevant: set[int], k: int
) -> tuple[float, float, float]:
    """(precision@k, recall@k, NDCG@k) of one ranked list against a non-empty relevant set."""
    hits = np.array([int(i) in relevant for i in ranked[:k]], dtype=bool)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(discounts[: len(hits)][hits].sum())
    ideal = float(discounts[: min(len(relevant), k)].sum())
    n_hits = int(hits.sum())
    return n_hits / k, n_hits / len(relevant), dcg / ideal


@dataclass(frozen=True)
class Result:
    precision: float
    recall: float
    ndcg: float
    users: int
    #: each evaluated user's NDCG (users in ascending index order): for paired intervals
    per_user: npt.NDArray[np.float64] | None = field(default=None, compare=False, repr=False)

    def as_dict(self, k: int) -> dict[str, float | int]:
        return {
            f"precision@{k}": self.precision,
            f"recall@{k}": self.recall,
            f"ndcg@{k}": self.ndcg,
            "users": self.users,
        }


def relevant_items(split: Split) -> dict[int, set[int]]:
    """Each evaluated user's relevant items (see the module doc)."""
    candidates = split.candidates
    seen = split.train.matrix().tolil().rows
    out: dict[int, set[int]] = {}
    for u, i in zip(split.test.user.tolist(), split.test.item.tolist(), strict=True):
        if candidates[i] and i not in seen[u]:
            out.setdefault(u, set()).add(i)
    return out


def evaluate(
    scorer: Scorer,
    split: Split,
    k: int,
    *,
    relevant: dict[int, set[int]] | None = None,
    batch: int = 512,
) -> Result:
    """Mean precision, recall and NDCG at k over the users with relevant items."""
    relevant = relevant_items(split) if relevant is None else relevant
    users = np.array(sorted(relevant), dtype=np.int64)
    if not len(users):
        return Result(0.0, 0.0, 0.0, 0)
    seen = split.train.matrix()
    candidates = split.candidates
    per_user = np.zeros((len(users), 3))
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        ranked = top_k(scorer(chunk), seen[chunk], candidates, k)
        for j, (u, items) in enumerate(zip(chunk.tolist(), ranked, strict=True)):
            per_user[start + j] = user_metrics(items, relevant[u], k)
    p, r, n = per_user.mean(axis=0)
    return Result(float(p), float(r), float(n), len(users), per_user[:, 2])


def bootstrap_ratio(
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """A paired bootstrap 95% interval of ``mean(a) / mean(b)`` over users: the same
    resampled users for both (``a[i]`` and ``b[i]`` are one user's figures), so what the
    two models have in common (easy and hard users) cancels out of the interval."""
    if len(a) != len(b) or not len(a):
        raise ValueError("paired figures of the same, non-empty set of users are needed")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(resamples, len(a)))
    num, den = a[idx].mean(axis=1), b[idx].mean(axis=1)
    ratios = num[den > 0] / den[den > 0]
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)
