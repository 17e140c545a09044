"""A model version as bytes: a compressed ``.npz`` of plain arrays (no pickle: loading an
artefact runs no code), stored in ``recsys.models.artefact``.

It holds what serving needs and nothing of LightFM itself: the user and item
representations (LightFM's item features already folded in), the item biases, the pairs of
the training part (to evaluate it later on another split without leakage) and of the whole
window (what each user has seen), popularity over the window (the cold-start fallback),
the candidate items, titles and genres.

Two kinds of model (``meta["kind"]``): ``factors`` - ``user_factors[u] . item_factors[i] +
item_bias[i]``; ``item`` - an item x item matrix over ``matrix_items`` (EASE^R), a user
scored as their weighted pairs of the window (``seen``, weights kept) times the matrix
(:meth:`Artefact.scores`); ``blend`` - both, standardised and weighted by ``blend_weight``. Format 1 (factors only, no pair weights) still loads.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from cinepulse_recommender.models import blend_scores

FORMAT = 2
READABLE = (1, 2)


def _csr_arrays(name: str, m: sp.csr_matrix, *, values: bool = False) -> dict[str, Any]:
    m = sp.csr_matrix(m)
    arrays = {
        f"{name}_indptr": m.indptr.astype(np.int64),
        f"{name}_indices": m.indices.astype(np.int32),
    }
    if values:  # an item model scores users from their weighted pairs
        arrays[f"{name}_data"] = m.data.astype(np.float32)
    return arrays


def _csr(arrays: Any, name: str, shape: tuple[int, int]) -> sp.csr_matrix:
    indptr, indices = arrays[f"{name}_indptr"], arrays[f"{name}_indices"]
    if f"{name}_data" in arrays:
        data = arrays[f"{name}_data"]
    else:
        data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=shape)


def _item_matrix(arrays: Any) -> npt.NDArray[np.float32] | sp.csr_matrix | None:
    if "item_matrix_indptr" in arrays:  # a sparse EASE
        n = len(arrays["matrix_items"])
        return _csr(arrays, "item_matrix", (n, n))
    return arrays.get("item_matrix")


@dataclass
class Artefact:
    user_ids: npt.NDArray[np.str_]
    item_ids: npt.NDArray[np.int64]
    user_factors: npt.NDArray[np.float32]
    item_factors: npt.NDArray[np.float32]
    item_bias: npt.NDArray[np.float32]
    candidates: npt.NDArray[np.bool_]
    popularity: npt.NDArray[np.float64]
    seen: sp.csr_matrix  # users x items: every pair of the window
    trained: sp.csr_matrix  # users x items: the pairs the factors were fitted on
    titles: list[str]
    genres: list[list[str]]  # per item
    meta: dict[str, Any] = field(default_factory=dict)
    #: an item model's matrix over ``matrix_items`` (None: a factor model); CSR for a sparse
    #: EASE (above its item bound)
    item_matrix: npt.NDArray[np.float32] | sp.csr_matrix | None = None
    matrix_items: npt.NDArray[np.int64] | None = None
    #: a blend: the item model's weight (standardised scores, see models.blend_scores)
    blend_weight: float | None = None

    @property
    def seen_weighted(self) -> bool:
        """Whether ``seen`` holds the pairs' weights: a format-1 artefact stored only which
        pairs there are (read back with every weight 1.0)."""
        return int(self.meta.get("format", FORMAT)) >= 2

    @property
    def kind(self) -> str:
        if self.item_matrix is None:
            return "factors"
        return "item" if self.blend_weight is None else "blend"

    def factor_scores(self, users: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        out = self.user_factors[users] @ self.item_factors.T + self.item_bias
        return np.asarray(out, dtype=np.float32)

    def scores(self, users: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Raw scores of a block of users over every item (nothing masked)."""
        if self.item_matrix is None:
            return self.factor_scores(users)
        items = self.history_scores(self.seen[users])
        if self.blend_weight is None:
            return items
        return blend_scores(self.factor_scores(users), items, self.blend_weight)

    def history_scores(self, history: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """An item model's scores of users given as rows of weighted pairs over this
        artefact's items."""
        assert self.item_matrix is not None and self.matrix_items is not None
        out = np.zeros((history.shape[0], len(self.item_ids)), dtype=np.float32)
        block = history[:, self.matrix_items] @ self.item_matrix
        out[:, self.matrix_items] = block.toarray() if sp.issparse(block) else block
        return out

    def to_bytes(self) -> bytes:
        genre_names = sorted({g for gs in self.genres for g in gs})
        index = {g: i for i, g in enumerate(genre_names)}
        item_genres = sp.csr_matrix(
            (
                np.ones(sum(len(g) for g in self.genres), dtype=np.float32),
                [index[g] for gs in self.genres for g in gs],
                np.concatenate([[0], np.cumsum([len(g) for g in self.genres])]),
            ),
            shape=(len(self.item_ids), len(genre_names)),
        )
        meta = self.meta | {
            "format": FORMAT,
            "kind": self.kind,
            "blend_weight": self.blend_weight,
        }
        item_model: dict[str, Any] = {}
        if sp.issparse(self.item_matrix):
            item_model = _csr_arrays("item_matrix", self.item_matrix, values=True)
            item_model["matrix_items"] = self.matrix_items
        elif self.item_matrix is not None:
            item_model = {"item_matrix": self.item_matrix, "matrix_items": self.matrix_items}
        arrays: dict[str, npt.NDArray[Any]] = dict(
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            user_ids=self.user_ids.astype(np.str_),
            item_ids=self.item_ids,
            user_factors=self.user_factors,
            item_factors=self.item_factors,
            item_bias=self.item_bias,
            candidates=self.candidates,
            popularity=self.popularity,
            titles=np.array(self.titles, dtype=np.str_),
            genre_names=np.array(genre_names, dtype=np.str_),
            **_csr_arrays("seen", self.seen, values=True),
            **item_model,
            **_csr_arrays("trained", self.trained),
            **_csr_arrays("genres", item_genres),
        )
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Artefact:
        with np.load(io.BytesIO(data), allow_pickle=False) as a:
            meta = json.loads(a["meta"].tobytes().decode())
            if meta.get("format") not in READABLE:
                raise ValueError(f"unknown artefact format {meta.get('format')!r}")
            user_ids, item_ids = a["user_ids"], a["item_ids"]
            shape = (len(user_ids), len(item_ids))
            genre_names = a["genre_names"].tolist()
            item_genres = _csr(a, "genres", (len(item_ids), len(genre_names)))
            return cls(
                user_ids=user_ids,
                item_ids=item_ids,
                user_factors=a["user_factors"],
                item_factors=a["item_factors"],
                item_bias=a["item_bias"],
                candidates=a["candidates"],
                popularity=a["popularity"],
                seen=_csr(a, "seen", shape),
                trained=_csr(a, "trained", shape),
                titles=a["titles"].tolist(),
                genres=[
                    [genre_names[j] for j in item_genres.indices[s:e]]
                    for s, e in zip(item_genres.indptr[:-1], item_genres.indptr[1:], strict=True)
                ],
                meta=meta,
                item_matrix=_item_matrix(a),
                matrix_items=a.get("matrix_items"),
                blend_weight=meta.get("blend_weight"),
            )
