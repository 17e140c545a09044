"""Answers from one loaded model version, in memory: no database on the request path.

A :class:`Recommender` is built once per version (off the event loop) and never changed
afterwards; the server swaps the whole object, so a request that started on one version
ends on it. Strategies:

* ``model`` - a user the model knows: the precomputed top-N (seen items and non-candidates
  already removed) when it can answer (``exclude_seen``, ``k`` within N, and enough items
  of the requested genre in it), else the user's scores over every candidate, computed on
  the fly (``path`` says which: ``precomputed`` or ``scored``).
* fresh history (``history`` given: the user's pairs read from the facts at request time,
  :mod:`~.fresh`): when it differs from the pairs the version was trained on, the user is
  scored from it (``path`` ``fresh``): an item model (and a blend's item part) as history x
  its matrix; a factor model (and a blend's factor part) folds the history in, solving
  implicit ALS's user step against the fixed item factors (see :meth:`Recommender.fold_in`).
  Its seen movies are the fresh ones. A user unknown to the version but with a history is
  scored the same way. An unchanged history keeps the precomputed path.
* ``model_stale`` - the history read failed (``stale``): the version's own view of the
  user, as above, and the answer says so.
* ``popular_in_genre`` / ``popular`` - a user the model does not know (cold start), or no
  model published yet: the movies with the most users in the window, in the genre when one
  is asked for.
* similar movies: ``model`` (cosine of the item representations, features included; an
  item model's own item x item weights); ``popular_in_genre`` (same genres) without a model
  or for a movie an item model learnt nothing of.

A factor model scores ``user . item + bias``; an item model (EASE^R) scores a user's
weighted pairs times its item x item matrix (:meth:`~.artefact.Artefact.scores`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from cinepulse_recommender.artefact import Artefact
from cinepulse_recommender.evaluation import best, best_row
from cinepulse_recommender.fresh import History
from cinepulse_recommender.models import blend_scores

MODEL, POPULAR, POPULAR_IN_GENRE = "model", "popular", "popular_in_genre"
#: a known user answered from the version alone because their history could not be read
MODEL_STALE = "model_stale"
PRECOMPUTED, SCORED, FRESH = "precomputed", "scored", "fresh"
#: the fold-in's parameters when the artefact does not name them (a LightFM model): a ridge
#: fit of the history's weights on the item factors
FOLD_IN_DEFAULTS = {"regularization": 1.0, "alpha": 1.0}
#: users scored at once when precomputing (bounds memory: chunk x items floats)
CHUNK = 1024


class UnknownGenreError(KeyError):
    pass


class UnknownMovieError(KeyError):
    pass


@dataclass(frozen=True)
class Item:
    movie_id: int
    title: str | None
    score: float


@dataclass(frozen=True)
class Answer:
    items: list[Item]
    strategy: str
    path: str


@dataclass
class Popularity:
    """The popularity fallback: every movie with at least one user in the window."""

    item_ids: npt.NDArray[np.int64]
    popularity: npt.NDArray[np.float64]
    titles: list[str | None]
    genres: list[list[str]]


@dataclass
class Recommender:
    """One version (``version`` None: popularity only, no model published)."""

    version: str | None
    trained_at: float | None  # Unix seconds the artefact was made
    pop: Popularity
    artefact: Artefact | None = None
    top_n: int = 100
    # derived in __post_init__
    item_pos: dict[int, int] = field(init=False, default_factory=dict)
    user_pos: dict[str, int] = field(init=False, default_factory=dict)
    genre_masks: dict[str, npt.NDArray[np.bool_]] = field(init=False, default_factory=dict)
    #: per genre, the items *not* in it (index arrays: masking by index is the fast way)
    genre_out: dict[str, npt.NDArray[np.int64]] = field(init=False, default_factory=dict)
    noncandidates: npt.NDArray[np.int64] = field(init=False)
    popular: dict[str | None, npt.NDArray[np.int64]] = field(init=False, default_factory=dict)
    top: npt.NDArray[np.int64] = field(init=False)
    top_scores: npt.NDArray[np.float32] = field(init=False)
    unit: npt.NDArray[np.float32] = field(init=False)
    #: item ids sorted, and the positions that sort them (history ids -> positions)
    sorted_ids: npt.NDArray[np.int64] = field(init=False)
    id_order: npt.NDArray[np.int64] = field(init=False)
    #: the fold-in: item_factors' Gram matrix, and ALS's regularization and alpha
    gram: npt.NDArray[np.float64] = field(init=False)
    fold_params: dict[str, float] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        p = self.pop
        self.item_pos = {int(m): i for i, m in enumerate(p.item_ids.tolist())}
        self.id_order = np.argsort(p.item_ids, kind="stable").astype(np.int64)
        self.sorted_ids = p.item_ids[self.id_order]
        names = sorted({g for gs in p.genres for g in gs})
        for name in names:
            mask = np.array([name in gs for gs in p.genres], dtype=bool)
            self.genre_masks[name.lower()] = mask
            self.genre_out[name.lower()] = np.flatnonzero(~mask)
        order = np.lexsort((p.item_ids, -p.popularity))
        order = order[p.popularity[order] > 0]
        self.popular[None] = order
        for name, mask in self.genre_masks.items():
            self.popular[name] = order[mask[order]]
        a = self.artefact
        if a is None:
            self.top = np.zeros((0, 0), dtype=np.int64)
            self.top_scores = np.zeros((0, 0), dtype=np.float32)
            self.unit = np.zeros((0, 0), dtype=np.float32)
            self.noncandidates = np.zeros(0, dtype=np.int64)
            self.gram = np.zeros((0, 0), dtype=np.float64)
            return
        y = a.item_factors.astype(np.float64)
        self.gram = y.T @ y
        self.fold_params = FOLD_IN_DEFAULTS | dict(a.meta.get("fold_in") or {})
        self.user_pos = {u: i for i, u in enumerate(a.user_ids.tolist())}
        self.noncandidates = np.flatnonzero(~a.candidates)
        # similar movies: cosine of the item representations (an item model uses its
        # matrix's rows directly, see similar())
        vectors = a.item_factors if a.item_matrix is None else np.zeros((0, 0), np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.unit = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        n_users = len(a.user_ids)
        self.top = np.full((n_users, self.top_n), -1, dtype=np.int64)
        self.top_scores = np.zeros((n_users, self.top_n), dtype=np.float32)
        for start in range(0, n_users, CHUNK):
            users = np.arange(start, min(start + CHUNK, n_users))
            scores = self._scores(users)
            for row, items in zip(users, best(scores, self.top_n), strict=True):
                self.top[row, : len(items)] = items
                self.top_scores[row, : len(items)] = scores[row - start, items]

    @classmethod
    def from_artefact(cls, version: str, artefact: Artefact, top_n: int) -> Recommender:
        pop = Popularity(
            item_ids=artefact.item_ids,
            popularity=artefact.popularity,
            titles=list(artefact.titles),
            genres=artefact.genres,
        )
        return cls(version, artefact.meta.get("trained_at"), pop, artefact, top_n)

    # --- queries ---------------------------------------------------------------------------
    @property
    def has_model(self) -> bool:
        return self.artefact is not None

    def genre_mask(self, genre: str | None) -> npt.NDArray[np.bool_] | None:
        if genre is None:
            return None
        mask = self.genre_masks.get(genre.lower())
        if mask is None:
            raise UnknownGenreError(genre)
        return mask

    def knows_user(self, user_id: str) -> bool:
        return user_id in self.user_pos

    def _scores(self, users: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """A block of users' scores, without their seen items and non-candidates."""
        a = self.artefact
        assert a is not None
        scores = a.scores(users)
        scores[:, self.noncandidates] = -np.inf
        rows, cols = a.seen[users].nonzero()
        scores[rows, cols] = -np.inf
        return np.asarray(scores, dtype=np.float32)

    def _user_scores(
        self, u: int, *, exclude_seen: bool, genre: str | None
    ) -> npt.NDArray[np.float32]:
        """One user's scores over every item, masked (the on-the-fly path)."""
        a = self.artefact
        assert a is not None
        if a.item_matrix is None:  # one matrix-vector product: the hot path stays 1-d
            scores = a.item_factors @ a.user_factors[u] + a.item_bias
        else:
            scores = a.scores(np.array([u], dtype=np.int64))[0]
        scores[self.noncandidates] = -np.inf
        if genre is not None:
            scores[self.genre_out[genre.lower()]] = -np.inf
        if exclude_seen:
            scores[a.seen.indices[a.seen.indptr[u] : a.seen.indptr[u + 1]]] = -np.inf
        return scores

    def _similarities(self, a: Artefact, i: int) -> npt.NDArray[np.float32] | None:
        """Item ``i``'s similarity to every item; None when the model learnt nothing of it
        (an item model's movie without pairs: the same genres' popular movies then)."""
        if a.item_matrix is None:
            return self.unit @ self.unit[i]
        assert a.matrix_items is not None
        row = int(np.searchsorted(a.matrix_items, i))
        if row == len(a.matrix_items) or a.matrix_items[row] != i:
            return None
        # EASE's row i: how much having item i predicts each other item
        sims = np.full(len(a.item_ids), -np.inf, dtype=np.float32)
        own = a.item_matrix[row]
        sims[a.matrix_items] = own.toarray().ravel() if sp.issparse(own) else own
        return sims

    def _items(self, idx: npt.NDArray[np.int64], scores: npt.NDArray[np.floating]) -> list[Item]:
        ids, titles = self.pop.item_ids, self.pop.titles
        return [
            Item(int(ids[i]), titles[i], float(s))
            for i, s in zip(idx.tolist(), scores.tolist(), strict=True)
        ]

    def _popular(self, k: int, genre: str | None, skip: int | None = None) -> Answer:
        order = self.popular[genre.lower() if genre else None]
        if skip is not None:
            order = order[order != skip]
        idx = order[:k]
        return Answer(
            self._items(idx, self.pop.popularity[idx]),
            POPULAR_IN_GENRE if genre else POPULAR,
            POPULAR,
        )

    # --- fresh history ---------------------------------------------------------------------
    def view(self, history: History) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The history over this version's item positions (movies it does not know left
        out), memoised in the history for this version."""
        cached = history.views.get(self.version)
        if cached is None:
            ids = history.movie_ids
            at = np.searchsorted(self.sorted_ids, ids)
            at = np.minimum(at, max(len(self.sorted_ids) - 1, 0))
            known = self.sorted_ids[at] == ids if len(self.sorted_ids) else np.zeros(0, dtype=bool)
            pos = self.id_order[at[known]]
            order = np.argsort(pos)
            cached = (pos[order].astype(np.int64), history.weights[known][order])
            history.views[self.version] = cached
        return cached

    def unchanged(self, u: int, pos: npt.NDArray[np.int64], w: npt.NDArray[np.float32]) -> bool:
        """Whether the user's pairs are still those this version was built on."""
        a = self.artefact
        assert a is not None
        s, e = a.seen.indptr[u], a.seen.indptr[u + 1]
        if e - s != len(pos):
            return False
        idx, data = a.seen.indices[s:e], a.seen.data[s:e]
        order = np.argsort(idx)
        if not np.array_equal(idx[order], pos):
            return False
        if not a.seen_weighted:  # a format-1 artefact has no weights to compare: the items
            return True
        return bool(np.allclose(data[order], w, atol=1e-4))

    def fold_in(self, pos: npt.NDArray[np.int64], w: npt.NDArray[np.float32]) -> npt.NDArray:
        """A user factor for these pairs against the fixed item factors: implicit ALS's user
        step (``recalculate_user``), confidence ``alpha x weight``, regularisation as fitted;
        with a LightFM model (no ALS parameters) a ridge fit of the weights
        (:data:`FOLD_IN_DEFAULTS`)."""
        a = self.artefact
        assert a is not None
        f = a.item_factors.shape[1]
        if f == 0 or len(pos) == 0:
            return np.zeros(f, dtype=np.float64)
        y = a.item_factors[pos].astype(np.float64)
        c = self.fold_params["alpha"] * w.astype(np.float64)
        lhs = self.gram + (y.T * (c - 1.0)) @ y + self.fold_params["regularization"] * np.eye(f)
        return np.asarray(np.linalg.solve(lhs, y.T @ c))

    def fresh_scores(
        self, pos: npt.NDArray[np.int64], w: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """Raw scores over every item of a user given by their pairs (nothing masked)."""
        a = self.artefact
        assert a is not None
        items = None
        if a.item_matrix is not None:
            assert a.matrix_items is not None
            rows = np.searchsorted(a.matrix_items, pos)
            rows = np.minimum(rows, len(a.matrix_items) - 1)
            ok = a.matrix_items[rows] == pos
            items = np.zeros(len(a.item_ids), dtype=np.float32)
            items[a.matrix_items] = a.item_matrix[rows[ok]].T @ w[ok]
            if a.blend_weight is None:
                return items
        factors = (a.item_factors @ self.fold_in(pos, w) + a.item_bias).astype(np.float32)
        if items is None:
            return factors
        assert a.blend_weight is not None
        return blend_scores(factors[None], items[None], a.blend_weight)[0]

    def _fresh(
        self,
        pos: npt.NDArray[np.int64],
        w: npt.NDArray[np.float32],
        k: int,
        exclude_seen: bool,
        genre: str | None,
    ) -> Answer:
        scores = self.fresh_scores(pos, w)
        scores[self.noncandidates] = -np.inf
        if genre is not None:
            scores[self.genre_out[genre.lower()]] = -np.inf
        if exclude_seen:
            scores[pos] = -np.inf
        idx = best_row(scores, k)
        return Answer(self._items(idx, scores[idx]), MODEL, FRESH)

    def _fresh_top(
        self, pos: npt.NDArray[np.int64], w: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The top-N of a history, as the precomputed rows are (-1 padded)."""
        scores = self.fresh_scores(pos, w)
        scores[self.noncandidates] = -np.inf
        scores[pos] = -np.inf
        idx = best_row(scores, self.top_n)
        row = np.full(self.top_n, -1, dtype=np.int64)
        row_scores = np.zeros(self.top_n, dtype=np.float32)
        row[: len(idx)], row_scores[: len(idx)] = idx, scores[idx]
        return row, row_scores

    def _from_top(
        self,
        row: npt.NDArray[np.int64],
        row_scores: npt.NDArray[np.float32],
        k: int,
        allowed: npt.NDArray[np.bool_] | None,
        strategy: str,
        path: str,
    ) -> Answer | None:
        """k of a top-N row (in the genre, if one is asked for); None when the row has too
        few for it."""
        keep = row >= 0
        if allowed is not None:
            keep &= allowed[np.maximum(row, 0)]
        idx = row[keep]
        # the list holds every candidate when it is shorter than N: nothing to add
        complete = bool((row < 0).any())
        if len(idx) >= k or complete:
            return Answer(self._items(idx[:k], row_scores[keep][:k]), strategy, path)
        return None

    def recommend(
        self,
        user_id: str,
        k: int,
        *,
        exclude_seen: bool = True,
        genre: str | None = None,
        history: History | None = None,
        stale: bool = False,
    ) -> Answer:
        """Raises :class:`UnknownGenreError` for a genre no movie has. ``history``: the
        user's pairs read just now (None: the version's own); ``stale``: the read failed."""
        allowed = self.genre_mask(genre)
        u = self.user_pos.get(user_id)
        if history is not None and self.artefact is not None:
            pos, w = self.view(history)
            memo = history.views.setdefault((self.version, "fresh"), {})
            if "changed" not in memo:
                memo["changed"] = bool(len(pos)) and (u is None or not self.unchanged(u, pos, w))
            if memo["changed"]:
                if exclude_seen and k <= self.top_n:
                    # the history's own top-N, once per history read (the cache keeps it)
                    if "top" not in memo:
                        memo["top"] = self._fresh_top(pos, w)
                    row, row_scores = memo["top"]
                    answer = self._from_top(row, row_scores, k, allowed, MODEL, FRESH)
                    if answer is not None:
                        return answer
                return self._fresh(pos, w, k, exclude_seen, genre)
        if u is None:
            return self._popular(k, genre)
        strategy = MODEL_STALE if stale else MODEL
        if exclude_seen and k <= self.top_n:
            answer = self._from_top(
                self.top[u], self.top_scores[u], k, allowed, strategy, PRECOMPUTED
            )
            if answer is not None:
                return answer
        scores = self._user_scores(u, exclude_seen=exclude_seen, genre=genre)
        idx = best_row(scores, k)
        return Answer(self._items(idx, scores[idx]), strategy, SCORED)

    def similar(self, movie_id: int, k: int) -> Answer:
        """Raises :class:`UnknownMovieError` for a movie this version does not know."""
        i = self.item_pos.get(movie_id)
        if i is None:
            raise UnknownMovieError(movie_id)
        a = self.artefact
        sims = None if a is None else self._similarities(a, i)
        if sims is None:
            genres = self.pop.genres[i]
            order = self.popular[None]
            if genres:
                masks = [self.genre_masks[g.lower()] for g in genres]
                order = order[np.logical_or.reduce(masks)[order]]
            order = order[order != i][:k]
            return Answer(self._items(order, self.pop.popularity[order]), POPULAR_IN_GENRE, POPULAR)
        sims[self.noncandidates] = -np.inf
        sims[i] = -np.inf
        idx = best_row(sims, k)
        return Answer(self._items(idx, sims[idx]), MODEL, SCORED)
