"""The model and its baselines, trained on :class:`~cinepulse_recommender.interactions.Pairs`:

* :func:`train_lightfm` - LightFM, hybrid: every movie has an identity feature plus its
  genres, keywords and companies (rows normalised to sum 1, as LightFM's own ``Dataset``
  does), users their identity. Pair weights are LightFM's ``sample_weight``.
* :func:`train_als` - implicit's ALS on the same pairs (confidence = alpha * weight).
* :func:`popularity` - items by how many users have a pair with them.

Each gives a :class:`Trained` whose model (:class:`Factors`, or :class:`ItemModel` for the
item-based candidates of :mod:`~cinepulse_recommender.itemmodels`) has a *scorer* (users ->
scores over every item) for :func:`~cinepulse_recommender.evaluation.evaluate`, and a
``refit`` that fits the same family with the chosen parameters on other pairs. Tuning
(:func:`tune_lightfm`, ALS's grid) only ever sees a validation split carved out of the
training part.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from cinepulse_recommender.evaluation import Scorer, Split, evaluate, relevant_items
from cinepulse_recommender.interactions import Pairs
from cinepulse_recommender.settings import AlsSettings, ModelSettings


def item_features(
    n_items: int, tags: Iterable[tuple[int, str]], min_movies: int
) -> tuple[sp.csr_matrix, list[str]]:
    """``(matrix, feature names)``: identity columns first (one per item), then one column
    per tag (``genre:Drama``, ...) carried by at least ``min_movies`` items (genres always
    count); each row sums to 1."""
    by_tag: dict[str, set[int]] = {}
    for item, tag in tags:
        by_tag.setdefault(tag, set()).add(item)
    names = sorted(
        t for t, items in by_tag.items() if len(items) >= min_movies or t.startswith("genre:")
    )
    rows = list(range(n_items))
    cols = list(range(n_items))
    for j, name in enumerate(names, start=n_items):
        for item in sorted(by_tag[name]):
            rows.append(item)
            cols.append(j)
    m = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)),
        shape=(n_items, n_items + len(names)),
        dtype=np.float32,
    )
    norm = np.asarray(m.sum(axis=1)).ravel()
    m = sp.diags(1.0 / norm).astype(np.float32) @ m
    return sp.csr_matrix(m, dtype=np.float32), names


@dataclass
class Factors:
    """What serving needs of a factor model: ``score(u, i) = user[u] . item[i] + bias[i]``
    (a user's own bias does not change their ranking)."""

    user: npt.NDArray[np.float32]
    item: npt.NDArray[np.float32]
    item_bias: npt.NDArray[np.float32]

    def scorer(self) -> Scorer:
        def score(users: npt.NDArray[np.int64]) -> npt.NDArray[np.floating]:
            return self.user[users] @ self.item.T + self.item_bias

        return score


@dataclass
class ItemModel:
    """An item-based model (EASE^R): ``score(u) = history[u] @ matrix``, over the items the
    matrix covers (``items``; the others score 0: they had no pair to learn from). Serving
    scores a user from their history, so the model needs no per-user state."""

    #: len(items) x len(items): dense, or CSR (sparse EASE above its item bound)
    matrix: npt.NDArray[np.float32] | sp.csr_matrix
    items: npt.NDArray[np.int64]  # item indices (of the Pairs' item space) the matrix covers
    history: sp.csr_matrix  # users x items: the weighted pairs users are scored from

    def scorer(self) -> Scorer:
        return item_scorer(self.matrix, self.items, self.history)


def item_scorer(
    matrix: npt.NDArray[np.float32] | sp.csr_matrix,
    items: npt.NDArray[np.int64],
    history: sp.csr_matrix,
) -> Scorer:
    n_items = history.shape[1]
    own = sp.csr_matrix(history[:, items], dtype=np.float32)  # column slicing once, not per call

    def score(users: npt.NDArray[np.int64]) -> npt.NDArray[np.floating]:
        out = np.zeros((len(users), n_items), dtype=np.float32)
        block = own[users] @ matrix
        out[:, items] = block.toarray() if sp.issparse(block) else block
        return out

    return score


def standardised(scores: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Each row as z-scores over its items: models on different scales become addable."""
    scores = np.asarray(scores, dtype=np.float32)
    std = scores.std(axis=1, keepdims=True)
    return (scores - scores.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


def blend_scores(
    factors: npt.NDArray[np.floating], items: npt.NDArray[np.floating], weight: float
) -> npt.NDArray[np.float32]:
    """``(1 - weight)`` x the factor model's standardised scores + ``weight`` x the item
    model's (serving and evaluation both use this)."""
    return (1 - weight) * standardised(factors) + weight * standardised(items)


@dataclass
class Blend:
    """A factor model and an item model, their standardised scores weighted."""

    factors: Factors
    item: ItemModel
    weight: float  # of the item model

    def scorer(self) -> Scorer:
        f, i = self.factors.scorer(), self.item.scorer()

        def score(users: npt.NDArray[np.int64]) -> npt.NDArray[np.floating]:
            return blend_scores(f(users), i(users), self.weight)

        return score


#: what a candidate serves: a factor model, an item-based one, or a blend of the two
Model = Factors | ItemModel | Blend


@dataclass
class Trained:
    model: Model
    seconds: float  # tuning included
    fit_seconds: float  # the final fit alone
    params: dict[str, Any]
    tuning: list[dict[str, Any]] = field(default_factory=list)
    #: the model's family: popularity, als, lightfm, ease
    family: str = ""
    #: NDCG@k of the chosen parameters on the validation split (None: not measured yet)
    validation_ndcg: float | None = None
    #: the same family with the same (chosen) parameters fitted on other pairs: the final
    #: model is refitted on every pair of the window, the validation score on its train part
    refit: Callable[[Pairs], Model] | None = None


def _lightfm(s: ModelSettings) -> Any:
    from lightfm import LightFM  # built outside uv (scripts/setup.sh); imported when used

    return LightFM(
        no_components=s.no_components,
        loss=s.loss,
        learning_rate=s.learning_rate,
        item_alpha=s.item_alpha,
        user_alpha=s.user_alpha,
        max_sampled=s.max_sampled,
        random_state=s.random_state,
    )


def _lightfm_inputs(pairs: Pairs) -> tuple[sp.coo_matrix, sp.coo_matrix]:
    shape = pairs.shape
    ones = sp.coo_matrix(
        (np.ones(len(pairs), dtype=np.float32), (pairs.user, pairs.item)), shape=shape
    )
    weights = sp.coo_matrix(
        (pairs.weight.astype(np.float32), (pairs.user, pairs.item)), shape=shape
    )
    return ones, weights


def _factors(model: Any, features: sp.csr_matrix) -> Factors:
    item_bias, item = model.get_item_representations(features)
    _, user = model.get_user_representations()
    return Factors(
        user=np.ascontiguousarray(user, dtype=np.float32),
        item=np.ascontiguousarray(item, dtype=np.float32),
        item_bias=np.ascontiguousarray(item_bias, dtype=np.float32),
    )


def fit_lightfm(
    pairs: Pairs,
    features: sp.csr_matrix,
    s: ModelSettings,
    epochs: int,
    *,
    checkpoints: Sequence[int] = (),
    on_checkpoint: Any = None,
) -> Factors:
    """Fit ``epochs`` epochs; after each epoch in ``checkpoints`` call
    ``on_checkpoint(epoch, factors)``."""
    ones, weights = _lightfm_inputs(pairs)
    model = _lightfm(s)
    for epoch in range(1, epochs + 1):
        model.fit_partial(
            ones, item_features=features, sample_weight=weights, epochs=1, num_threads=s.threads
        )
        if on_checkpoint is not None and epoch in checkpoints:
            on_checkpoint(epoch, _factors(model, features))
    return _factors(model, features)


def tune_lightfm(
    split: Split, features: sp.csr_matrix, s: ModelSettings, k: int
) -> tuple[int, list[dict[str, Any]]]:
    """The number of epochs (every ``epoch_step`` up to ``epochs``) with the best NDCG@k on
    ``split`` (a validation split of the training part); and the curve."""
    checkpoints = sorted({*range(s.epoch_step, s.epochs + 1, s.epoch_step), s.epochs})
    relevant = relevant_items(split)
    curve: list[dict[str, Any]] = []

    def record(epoch: int, factors: Factors) -> None:
        result = evaluate(factors.scorer(), split, k, relevant=relevant)
        curve.append({"epochs": epoch, **result.as_dict(k)})

    fit_lightfm(split.train, features, s, s.epochs, checkpoints=checkpoints, on_checkpoint=record)
    best = max(curve, key=lambda c: (c[f"ndcg@{k}"], -c["epochs"]))
    return int(best["epochs"]), curve


def train_lightfm(
    pairs: Pairs,
    features: sp.csr_matrix,
    s: ModelSettings,
    k: int,
    validation: Split | None,
) -> Trained:
    """LightFM on ``pairs``; with ``validation`` (and ``tune_epochs``) the number of epochs
    is chosen on it first. ``seconds`` covers tuning and the final fit."""
    t0 = time.perf_counter()
    epochs, curve = s.epochs, list[dict[str, Any]]()
    if s.tune_epochs and validation is not None:
        epochs, curve = tune_lightfm(validation, features, s, k)
    t1 = time.perf_counter()
    factors = fit_lightfm(pairs, features, s, epochs)
    t2 = time.perf_counter()
    params = s.model_dump() | {"epochs": epochs, "max_epochs": s.epochs}
    at = [float(c[f"ndcg@{k}"]) for c in curve if c["epochs"] == epochs]
    best: float | None = at[0] if at else None
    return Trained(
        factors,
        t2 - t0,
        t2 - t1,
        params,
        curve,
        family="lightfm",
        validation_ndcg=best,
        refit=lambda p: fit_lightfm(p, features, s, epochs),
    )


def fit_als(pairs: Pairs, s: AlsSettings, threads: int, **overrides: Any) -> Factors:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    params = {
        "factors": s.factors,
        "regularization": s.regularization,
        "alpha": s.alpha,
        "iterations": s.iterations,
    } | overrides
    # implicit parallelises itself; OpenBLAS's own threads on top only contend
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            **params, num_threads=threads, random_state=42, calculate_training_loss=False
        )
        model.fit(pairs.matrix(), show_progress=False)
    return Factors(
        user=np.asarray(model.user_factors, dtype=np.float32),
        item=np.asarray(model.item_factors, dtype=np.float32),
        item_bias=np.zeros(pairs.shape[1], dtype=np.float32),
    )


#: the ALS grid tried on the validation split (``tune``): factors x regularization x alpha
ALS_GRID: dict[str, tuple[float, ...]] = {
    "factors": (32, 64, 128),
    "regularization": (0.01, 0.1, 1.0, 10.0),
    "alpha": (1.0, 10.0, 40.0),
}


def train_als(
    pairs: Pairs, s: AlsSettings, threads: int, k: int, validation: Split | None
) -> Trained:
    """ALS on ``pairs``, its parameters picked on ``validation`` when ``s.tune``."""
    t0 = time.perf_counter()
    chosen: dict[str, Any] = {}
    tuning: list[dict[str, Any]] = []
    if s.tune and validation is not None:
        relevant = relevant_items(validation)
        for n_factors in ALS_GRID["factors"]:
            for reg in ALS_GRID["regularization"]:
                for alpha in ALS_GRID["alpha"]:
                    trial = {"factors": int(n_factors), "regularization": reg, "alpha": alpha}
                    f = fit_als(validation.train, s, threads, **trial)
                    result = evaluate(f.scorer(), validation, k, relevant=relevant)
                    tuning.append(trial | result.as_dict(k))
        best = max(tuning, key=lambda t: t[f"ndcg@{k}"])
        chosen = {n: best[n] for n in ("factors", "regularization", "alpha")}
    t1 = time.perf_counter()
    factors = fit_als(pairs, s, threads, **chosen)
    t2 = time.perf_counter()
    params = s.model_dump() | chosen
    valid = max(float(t[f"ndcg@{k}"]) for t in tuning) if tuning else None
    return Trained(
        factors,
        t2 - t0,
        t2 - t1,
        params,
        tuning,
        family="als",
        validation_ndcg=valid,
        refit=lambda p: fit_als(p, s, threads, **chosen),
    )


def popularity(pairs: Pairs) -> npt.NDArray[np.float64]:
    """Users per item (ties broken by the summed weight, a tiny fraction of a user)."""
    users = np.bincount(pairs.item, minlength=pairs.shape[1]).astype(np.float64)
    weight = np.bincount(pairs.item, weights=pairs.weight, minlength=pairs.shape[1])
    return users + weight / (weight.max() + 1.0) if len(weight) else users


def popularity_model(pairs: Pairs) -> Factors:
    """Popularity as a factor model (no user factors, the item bias is the popularity), so
    it can be served like any other candidate when it is the best."""
    return Factors(
        user=np.zeros((pairs.shape[0], 1), dtype=np.float32),
        item=np.zeros((pairs.shape[1], 1), dtype=np.float32),
        item_bias=popularity(pairs).astype(np.float32),
    )


def train_popularity(pairs: Pairs) -> Trained:
    t0 = time.perf_counter()
    model = popularity_model(pairs)
    seconds = time.perf_counter() - t0
    return Trained(model, seconds, seconds, {}, family="popularity", refit=popularity_model)


def popularity_scorer(pairs: Pairs) -> Scorer:
    pop = popularity(pairs)

    def score(users: npt.NDArray[np.int64]) -> npt.NDArray[np.floating]:
        return np.broadcast_to(pop, (len(users), len(pop)))

    return score
