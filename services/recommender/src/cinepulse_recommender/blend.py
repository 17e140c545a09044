"""The blend candidate: the best factor model (ALS or LightFM) and the best item model
(EASE^R or RP3beta) of the run, each user's scores standardised per model and weighted
(:func:`~cinepulse_recommender.models.blend_scores`). Different families get different
users right, so the blend can beat both (about 2% on MovieLens-small in issue 23's
measurements).

The weight is picked on the validation split: both parts are refitted with their chosen
parameters on the validation split's training part, and :data:`WEIGHTS` are tried.
"""

from __future__ import annotations

import time
from typing import Any

from cinepulse_recommender.evaluation import Split, evaluate, relevant_items
from cinepulse_recommender.interactions import Pairs
from cinepulse_recommender.itemmodels import Skipped
from cinepulse_recommender.models import Blend, Factors, ItemModel, Trained

#: the item model's weights tried on the validation split
WEIGHTS: tuple[float, ...] = (0.25, 0.5, 0.75)
FACTOR_FAMILIES = ("als", "lightfm")
ITEM_FAMILIES = ("ease", "rp3beta")


def _best(candidates: dict[str, Trained], families: tuple[str, ...]) -> Trained | None:
    present = [candidates[f] for f in families if f in candidates]
    return max(present, key=lambda t: t.validation_ndcg or 0.0, default=None)


def train_blend(candidates: dict[str, Trained], validation: Split, k: int) -> Trained | Skipped:
    """The blend of the best (on validation) factor and item candidates; the candidates'
    ``validation_ndcg`` must be set already."""
    f, i = _best(candidates, FACTOR_FAMILIES), _best(candidates, ITEM_FAMILIES)
    if f is None or i is None:
        return Skipped("blend", "needs a factor model (ALS, LightFM) and an item model")
    assert f.refit is not None and i.refit is not None
    f_fit, i_fit = f.refit, i.refit
    t0 = time.perf_counter()
    fv, iv = f_fit(validation.train), i_fit(validation.train)
    assert isinstance(fv, Factors) and isinstance(iv, ItemModel)
    relevant = relevant_items(validation)
    tuning: list[dict[str, Any]] = []
    for weight in WEIGHTS:
        result = evaluate(Blend(fv, iv, weight).scorer(), validation, k, relevant=relevant)
        tuning.append({"weight": weight} | result.as_dict(k))
    best = max(tuning, key=lambda t: t[f"ndcg@{k}"])
    weight = float(best["weight"])
    assert isinstance(f.model, Factors) and isinstance(i.model, ItemModel)
    model = Blend(f.model, i.model, weight)  # the parts are already fitted on the train part
    seconds = time.perf_counter() - t0

    def refit(pairs: Pairs) -> Blend:
        fp, ip = f_fit(pairs), i_fit(pairs)
        assert isinstance(fp, Factors) and isinstance(ip, ItemModel)
        return Blend(fp, ip, weight)

    return Trained(
        model,
        seconds,
        0.0,
        {"factors": f.family, "item": i.family, "weight": weight},
        tuning,
        family="blend",
        validation_ndcg=float(best[f"ndcg@{k}"]),
        refit=refit,
    )
