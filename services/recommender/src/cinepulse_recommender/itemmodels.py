"""Item-based candidates: a user is scored as their history times an item x item matrix.

* :func:`fit_ease` - EASE^R (Steck 2019): ``B = I - P / diag(P)`` with
  ``P = (X^T X + lambda I)^-1`` over the items with at least one pair, ``diag(B) = 0``. X
  holds the pair weights (weighted pairs measured better than binary ones on
  MovieLens-small: NDCG@10 0.151 against 0.145 on the test part).
* :func:`fit_rp3beta` - RP3beta (Paudel et al. 2017): ``W = (P_iu P_ui)^alpha`` (row
  normalised transitions item -> user -> item, each raised to alpha), each column divided
  by its item's popularity^beta, the ``neighbours`` largest of each row kept.
* :func:`fit_ease_sparse` - EASE^R above its bound: each item's column is the same ridge
  regression as in EASE (the item's weights from the others', penalty lambda), but over its
  ``sparse_neighbours`` most co-occurring items only, so a small solve per item and a sparse
  matrix (items x neighbours) instead of a dense inverse (items^2 memory, items^3 time).
* :func:`train_item_model` - the parameters picked on the validation split (a small grid,
  :data:`GRIDS`). A dense matrix grows with items squared (EASE's inverse with items
  cubed), so above ``max_items`` items EASE turns sparse (``ease.sparse_neighbours``; 0: not
  trained) and RP3beta is not trained at all; the run says which (its params, or
  :class:`Skipped`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from cinepulse_recommender.evaluation import Split, evaluate, relevant_items
from cinepulse_recommender.interactions import Pairs
from cinepulse_recommender.models import ItemModel, Trained
from cinepulse_recommender.settings import EaseSettings, ItemModelSettings, Rp3Settings

#: the parameters tried on the validation split. EASE: geometric lambdas around the ~100
#: MovieLens-sized data wants with pair weights of 0.1-2. RP3beta: around the usual 0.5/0.5
GRIDS: dict[str, list[dict[str, float]]] = {
    "ease": [{"lam": lam} for lam in (10.0, 30.0, 100.0, 300.0, 1000.0)],
    "rp3beta": [{"alpha": a, "beta": b} for a in (0.5, 1.0) for b in (0.3, 0.5, 0.7)],
}


@dataclass(frozen=True)
class Skipped:
    """A candidate the run did not train, and why (it goes into the run's report)."""

    family: str
    reason: str


def active_items(pairs: Pairs) -> npt.NDArray[np.int64]:
    """The items with at least one pair: the only ones an item model can say anything of."""
    return np.flatnonzero(np.bincount(pairs.item, minlength=pairs.shape[1]) > 0).astype(np.int64)


def fit_ease(pairs: Pairs, lam: float) -> ItemModel:
    x = pairs.matrix()
    items = active_items(pairs)
    xa = x[:, items]
    gram = (xa.T @ xa).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)  # column j divided by P_jj
    np.fill_diagonal(b, 0.0)
    return ItemModel(matrix=b.astype(np.float32), items=items, history=x)


def fit_ease_sparse(pairs: Pairs, lam: float, neighbours: int) -> ItemModel:
    """EASE^R column by column, each over the item's ``neighbours`` most co-occurring items:
    ``B[N, j] = (G[N, N] + lambda I)^-1 G[N, j]`` with ``G = X^T X`` (EASE's closed form is the
    same regression over every other item). A CSR matrix of at most ``neighbours`` entries per
    column."""
    x = pairs.matrix()
    items = active_items(pairs)
    xa = sp.csr_matrix(x[:, items], dtype=np.float64)
    gram = sp.csr_matrix(xa.T @ xa)  # symmetric: row j is column j, and rows slice fast
    n = len(items)
    rows: list[npt.NDArray[np.int64]] = []
    cols: list[npt.NDArray[np.int64]] = []
    vals: list[npt.NDArray[np.float64]] = []
    for j in range(n):
        s, e = gram.indptr[j], gram.indptr[j + 1]
        idx, co = gram.indices[s:e], gram.data[s:e]
        keep = idx != j
        idx, co = idx[keep], co[keep]
        if len(idx) == 0:
            continue
        if len(idx) > neighbours:
            top = np.argpartition(-co, neighbours - 1)[:neighbours]
            idx, co = idx[top], co[top]
        local = gram[idx][:, idx].toarray()
        local[np.diag_indices_from(local)] += lam
        rows.append(idx.astype(np.int64))
        cols.append(np.full(len(idx), j, dtype=np.int64))
        vals.append(np.linalg.solve(local, co))
    data = np.concatenate(vals) if vals else np.zeros(0)
    matrix = sp.csr_matrix(
        (
            data.astype(np.float32),
            (
                np.concatenate(rows) if rows else np.zeros(0, np.int64),
                np.concatenate(cols) if cols else np.zeros(0, np.int64),
            ),
        ),
        shape=(n, n),
        dtype=np.float32,
    )
    return ItemModel(matrix=matrix, items=items, history=x)


def _row_normalised(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float64)
    sums = np.asarray(m.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / np.where(sums > 0, sums, 1.0)) @ m)


def fit_rp3beta(pairs: Pairs, alpha: float, beta: float, neighbours: int) -> ItemModel:
    x = pairs.matrix()
    items = active_items(pairs)
    xa = x[:, items]
    user_item, item_user = _row_normalised(xa), _row_normalised(xa.T)
    user_item.data **= alpha
    item_user.data **= alpha
    w = (item_user @ user_item).toarray()
    degree = np.bincount(pairs.item, minlength=pairs.shape[1])[items].astype(np.float64)
    w /= degree[None, :] ** beta
    np.fill_diagonal(w, 0.0)
    if neighbours < w.shape[1]:  # the rest is noise from one or two shared users
        cut = np.partition(w, -neighbours, axis=1)[:, -neighbours][:, None]
        w[w < cut] = 0.0
    return ItemModel(matrix=w.astype(np.float32), items=items, history=x)


def _fitter(family: str, s: ItemModelSettings, *, sparse: bool = False) -> Callable[..., ItemModel]:
    if isinstance(s, EaseSettings):
        if sparse:
            return lambda pairs, lam: fit_ease_sparse(pairs, lam, s.sparse_neighbours)
        return fit_ease
    assert isinstance(s, Rp3Settings), family
    return lambda pairs, alpha, beta: fit_rp3beta(pairs, alpha, beta, s.neighbours)


def _defaults(s: ItemModelSettings) -> dict[str, float]:
    if isinstance(s, EaseSettings):
        return {"lam": s.lam}
    assert isinstance(s, Rp3Settings)
    return {"alpha": s.alpha, "beta": s.beta}


def train_item_model(
    family: str, pairs: Pairs, s: ItemModelSettings, k: int, validation: Split | None
) -> Trained | Skipped:
    """``family`` (``ease`` or ``rp3beta``) on ``pairs``, its parameters picked on
    ``validation`` (``s.tune``), or :class:`Skipped` (disabled, or more than
    ``s.max_items`` items to cover)."""
    if not s.enabled:
        return Skipped(family, f"disabled ({family}.enabled false)")
    n = len(active_items(pairs))
    sparse = n > s.max_items and isinstance(s, EaseSettings) and s.sparse_neighbours > 0
    if n > s.max_items and not sparse:
        return Skipped(
            family,
            f"{n:,} items > {family}.max_items {s.max_items:,}: its dense item x item matrix "
            f"would take ~{n * n * 8 / 1e9:.1f} GB to build",
        )
    fit = _fitter(family, s, sparse=sparse)
    bound = {"sparse": sparse}
    t0 = time.perf_counter()
    tuning: list[dict[str, Any]] = []
    chosen = _defaults(s)
    if s.tune and validation is not None:
        relevant = relevant_items(validation)
        for trial in GRIDS[family]:
            model = fit(validation.train, **trial)
            result = evaluate(model.scorer(), validation, k, relevant=relevant)
            tuning.append(trial | result.as_dict(k))
        best = max(tuning, key=lambda t: t[f"ndcg@{k}"])
        chosen = {name: float(best[name]) for name in chosen}
    t1 = time.perf_counter()
    model = fit(pairs, **chosen)
    t2 = time.perf_counter()
    valid = max(float(t[f"ndcg@{k}"]) for t in tuning) if tuning else None
    return Trained(
        model,
        t2 - t0,
        t2 - t1,
        s.model_dump() | chosen | {"items": n} | bound,
        tuning,
        family=family,
        validation_ndcg=valid,
        refit=lambda p: fit(p, **chosen),
    )
