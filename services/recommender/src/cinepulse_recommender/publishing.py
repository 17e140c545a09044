"""Whether a run's model is served: two gates, both on held-out pairs.

1. **Baselines of the same run** (:func:`gate`): the model chosen on the validation split
   must not lose to popularity or the tuned ALS on the test part; if it does, the best
   baseline is served instead (it is then the run's candidate for gate 2).
2. **The published model** (:func:`compare_with_published`, :func:`decide`): scored on this
   run's held-out pairs, without those it was trained on (it would win by having seen the
   answers); the run's model is published only if its NDCG@k is higher (by
   ``min_improvement``), or if nothing is published yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from cinepulse_recommender.artefact import Artefact
from cinepulse_recommender.evaluation import Result, Scorer, Split, evaluate
from cinepulse_recommender.interactions import Pairs
from cinepulse_recommender.models import blend_scores

#: the baselines every served model must match on the test part
BASELINES = ("popularity", "als")


def gate(chosen: str, results: dict[str, Result], k: int) -> tuple[str, str]:
    """``(served, why)``: ``chosen`` unless a baseline has a higher NDCG@k on the test part,
    then the best baseline."""
    best = max(BASELINES, key=lambda b: results[b].ndcg)
    mine, theirs = results[chosen].ndcg, results[best].ndcg
    if chosen != best and mine < theirs:
        return best, (
            f"{chosen} (best on validation) loses to the {best} baseline on the test part "
            f"(ndcg@{k} {mine:.4f} < {theirs:.4f}): {best} is served instead"
        )
    return chosen, (
        f"{chosen}: best on validation, ndcg@{k} {mine:.4f} on the test part, not below the "
        f"best baseline ({best} {theirs:.4f})"
    )


def _positions(values: npt.NDArray[Any], known: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    index = {v: i for i, v in enumerate(known.tolist())}
    return np.array([index.get(v, -1) for v in values.tolist()], dtype=np.int64)


@dataclass
class Comparison:
    version: str
    candidate: Result
    published: Result
    dropped_pairs: int  # held-out pairs the published model was trained on


def published_scorer(
    champion: Artefact, pairs: Pairs, history: Pairs
) -> tuple[Scorer, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The published model's answers over this run's users and items, as it serves them: a
    factor model scores the users it knows and gives the others its popularity; an item
    model scores every user from their pairs in ``history`` (this run's training part, what
    the candidate sees too); a blend adds its factors for the users it knows. Items it does
    not know (or did not serve) score -inf."""
    cu = _positions(pairs.user_ids, champion.user_ids)
    ci = _positions(pairs.item_ids, champion.item_ids)
    served = ci >= 0
    served[served] = champion.candidates[ci[served]]
    cols = ci[served]
    pop = champion.popularity[cols].astype(np.float32)
    mapped = None
    if champion.item_matrix is not None:
        keep = ci[history.item] >= 0
        mapped = sp.csr_matrix(
            (history.weight[keep], (history.user[keep], ci[history.item[keep]])),
            shape=(pairs.shape[0], len(champion.item_ids)),
            dtype=np.float32,
        )

    def score(users: npt.NDArray[np.int64]) -> npt.NDArray[np.floating]:
        out = np.full((len(users), pairs.shape[1]), -np.inf, dtype=np.float32)
        known = cu[users] >= 0
        if mapped is not None:
            block = champion.history_scores(mapped[users])
            if champion.blend_weight is not None and known.any():
                # a user the blend knows gets both parts; another the item part alone
                factors = champion.factor_scores(cu[users][known])
                block[known] = blend_scores(factors, block[known], champion.blend_weight)
            out[:, served] = block[:, cols]
            return out
        block = np.full((len(users), len(cols)), 0.0, dtype=np.float32)
        if known.any():
            f = champion.user_factors[cu[users][known]]
            block[known] = f @ champion.item_factors[cols].T + champion.item_bias[cols]
        block[~known] = pop
        out[:, served] = block
        return out

    return score, cu, ci


def compare_with_published(
    champion_version: str,
    champion: Artefact,
    candidate: Scorer,
    pairs: Pairs,
    split: Split,
    relevant: dict[int, set[int]],
    k: int,
) -> Comparison:
    scorer, cu, ci = published_scorer(champion, pairs, split.train)
    trained = champion.trained.tolil().rows
    kept: dict[int, set[int]] = {}
    dropped = 0
    for u, items in relevant.items():
        keep = set()
        for i in items:
            if cu[u] >= 0 and ci[i] >= 0 and int(ci[i]) in trained[cu[u]]:
                dropped += 1
            else:
                keep.add(i)
        if keep:
            kept[u] = keep
    return Comparison(
        version=champion_version,
        candidate=evaluate(candidate, split, k, relevant=kept),
        published=evaluate(scorer, split, k, relevant=kept),
        dropped_pairs=dropped,
    )


def decide(comparison: Comparison | None, min_improvement: float, k: int) -> tuple[bool, str]:
    """Publish when nothing is published, or when the candidate's NDCG@k beats the
    published model's on the same held-out pairs by more than ``min_improvement``."""
    if comparison is None:
        return True, "first model: nothing published yet"
    new, old = comparison.candidate.ndcg, comparison.published.ndcg
    bar = old * (1 + min_improvement)
    if comparison.candidate.users == 0:
        return False, (f"no held-out pairs left that model {comparison.version} was not trained on")
    if new > bar:
        return True, (
            f"ndcg@{k} {new:.4f} beats published {comparison.version}'s {old:.4f} on the "
            f"same {comparison.candidate.users} users"
        )
    return False, (
        f"not better: ndcg@{k} {new:.4f} vs published {comparison.version}'s {old:.4f} on the "
        f"same {comparison.candidate.users} users (needs > {bar:.4f})"
    )
