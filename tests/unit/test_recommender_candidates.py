"""The recommender's candidates and how the served one is chosen: EASE^R against its
definition, its item bound, the baseline gate, the refit, and serving an item model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from cinepulse_recommender.artefact import Artefact
from cinepulse_recommender.evaluation import Result, bootstrap_ratio, time_split
from cinepulse_recommender.fresh import History
from cinepulse_recommender.interactions import Pairs
from cinepulse_recommender.itemmodels import (
    Skipped,
    fit_ease,
    fit_ease_sparse,
    fit_rp3beta,
    train_item_model,
)
from cinepulse_recommender.models import standardised
from cinepulse_recommender.publishing import gate
from cinepulse_recommender.recommend import MODEL, POPULAR_IN_GENRE, Recommender
from cinepulse_recommender.settings import EaseSettings, Rp3Settings
from cinepulse_recommender.training import train_and_evaluate
from tests.unit.test_recommender_evaluation import SYNTHETIC, _synthetic, _taste_groups


def _pairs(dense: np.ndarray) -> Pairs:
    users, items = np.nonzero(dense)
    return Pairs(
        user_ids=np.array([f"u{u}" for u in range(dense.shape[0])]),
        item_ids=np.arange(dense.shape[1], dtype=np.int64) + 100,
        user=users.astype(np.int64),
        item=items.astype(np.int64),
        weight=dense[users, items].astype(np.float64),
        at=np.arange(len(users), dtype=np.float64),
    )


def test_ease_solves_its_constrained_ridge_regression_column_by_column() -> None:
    rng = np.random.default_rng(3)
    dense = (rng.random((30, 8)) < 0.4) * rng.choice([0.5, 1.0, 2.0], size=(30, 8))
    dense[:, 7] = 0  # an item nobody has: left out of the matrix
    lam = 2.0
    model = fit_ease(_pairs(dense), lam)
    assert model.items.tolist() == list(range(7))
    x = dense[:, :7]
    g = x.T @ x
    # column j: ridge regression of item j on every other item (diag(B) = 0 by definition)
    for j in range(7):
        others = [i for i in range(7) if i != j]
        want = np.linalg.solve(g[np.ix_(others, others)] + lam * np.eye(6), g[others, j])
        assert model.matrix[others, j] == pytest.approx(want, rel=1e-4, abs=1e-5)
        assert model.matrix[j, j] == 0
    # a user's scores: their weighted pairs times B; the uncovered item scores 0
    scores = model.scorer()(np.array([0, 1]))
    assert scores[:, :7] == pytest.approx(x[:2] @ model.matrix, rel=1e-4, abs=1e-5)
    assert scores[:, 7].tolist() == [0.0, 0.0]


def test_ease_is_skipped_above_its_item_bound_and_says_why() -> None:
    pairs = _pairs(np.eye(6))
    split = time_split(pairs, 0.2, 5)
    no_sparse = EaseSettings(max_items=5, tune=False, sparse_neighbours=0)
    out = train_item_model("ease", split.train, no_sparse, 10, None)
    assert isinstance(out, Skipped) and out.family == "ease"
    assert "6 items > ease.max_items 5" in out.reason
    fits = train_item_model("ease", split.train, EaseSettings(max_items=6), 10, None)
    assert not isinstance(fits, Skipped) and fits.params["items"] == 6
    assert fits.params["sparse"] is False
    # above the bound, by default: EASE over each item's nearest neighbours, sparse
    sparse = train_item_model("ease", split.train, EaseSettings(max_items=5), 10, None)
    assert not isinstance(sparse, Skipped) and sparse.params["sparse"] is True
    rp3 = train_item_model("rp3beta", split.train, Rp3Settings(max_items=5), 10, None)
    assert isinstance(rp3, Skipped)


def test_sparse_ease_is_eases_regression_over_each_items_neighbours() -> None:
    rng = np.random.default_rng(3)
    dense = (rng.random((40, 8)) < 0.5) * rng.choice([0.5, 1.0, 2.0], size=(40, 8))
    dense[:, 7] = 0
    pairs, lam = _pairs(dense), 2.0
    full = fit_ease(pairs, lam)
    # every other item as a neighbour: the same matrix as the dense closed form
    wide = fit_ease_sparse(pairs, lam, neighbours=10)
    assert sp.issparse(wide.matrix) and wide.items.tolist() == full.items.tolist()
    assert sp.csr_matrix(wide.matrix).toarray() == pytest.approx(full.matrix, rel=1e-4, abs=1e-5)
    # 3 neighbours: at most 3 weights per column, each the ridge regression on those 3
    narrow = fit_ease_sparse(pairs, lam, neighbours=3)
    m = sp.csr_matrix(narrow.matrix).toarray()
    assert ((m != 0).sum(axis=0) <= 3).all() and np.diag(m).tolist() == [0.0] * 7
    x = dense[:, :7]
    g = x.T @ x
    for j in range(7):
        nb = np.flatnonzero(m[:, j])
        want = np.linalg.solve(g[np.ix_(nb, nb)] + lam * np.eye(len(nb)), g[nb, j])
        assert m[nb, j] == pytest.approx(want, rel=1e-4, abs=1e-5)
    scores = narrow.scorer()(np.array([0, 1]))
    assert scores[:, :7] == pytest.approx(x[:2] @ m, rel=1e-4, abs=1e-5)


def test_a_sparse_item_matrix_is_stored_and_served() -> None:
    a = item_artefact()
    dense = a.item_matrix
    assert isinstance(dense, np.ndarray)
    a.item_matrix = sp.csr_matrix(dense)
    loaded = Artefact.from_bytes(a.to_bytes())
    assert sp.issparse(loaded.item_matrix) and loaded.kind == "item"
    rec = Recommender.from_artefact("v-sparse", loaded, top_n=3)
    assert [i.movie_id for i in rec.recommend("alice", 2).items] == [102, 103]
    assert [i.movie_id for i in rec.similar(101, 2).items] == [102, 103]
    fresh = History(np.array([101, 105], dtype=np.int64), np.array([2.0, 1.0], np.float32))
    answer = rec.recommend("alice", 2, history=fresh)
    assert [i.movie_id for i in answer.items] == [102, 103]
    assert [i.score for i in answer.items] == pytest.approx([1.6, 1.2])


def test_rp3beta_walks_item_user_item_and_discounts_popular_targets() -> None:
    # user 0 has items 0 and 1, user 1 items 1 and 2
    dense = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    walk = fit_rp3beta(_pairs(dense), alpha=1.0, beta=0.0, neighbours=3).matrix
    # item -> a user of it -> one of that user's items, diagonal (back to itself) removed
    assert walk == pytest.approx(np.array([[0, 0.5, 0], [0.25, 0, 0.25], [0, 0.5, 0]]))
    # beta 1: each target divided by its popularity (item 1 has two users)
    assert fit_rp3beta(_pairs(dense), 1.0, 1.0, 3).matrix == pytest.approx(
        np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]])
    )
    # alpha 2 squares each transition probability; one neighbour keeps each row's largest
    sharp = fit_rp3beta(_pairs(dense), 2.0, 0.0, 1).matrix
    assert sharp[0].tolist() == pytest.approx([0, 0.25, 0])


def test_the_paired_bootstrap_interval_of_a_ratio() -> None:
    rng = np.random.default_rng(1)
    base = rng.random(500)
    assert bootstrap_ratio(1.1 * base, base) == pytest.approx((1.1, 1.1))
    noisy = base * 1.1 + rng.normal(0, 0.05, 500)
    lo, hi = bootstrap_ratio(noisy, base)
    assert lo < noisy.mean() / base.mean() < hi and lo > 1.0 and hi < 1.2
    with pytest.raises(ValueError, match="paired"):
        bootstrap_ratio(base, base[:10])


def _r(ndcg: float) -> Result:
    return Result(0.0, 0.0, ndcg, 10)


def test_a_model_that_loses_to_a_baseline_is_not_served() -> None:
    results = {"popularity": _r(0.09), "als": _r(0.14), "lightfm": _r(0.13), "ease": _r(0.15)}
    served, why = gate("lightfm", results, 10)
    assert served == "als" and "loses to the als baseline" in why and "0.1300 < 0.1400" in why
    assert gate("ease", results, 10)[0] == "ease"
    assert gate("als", results, 10)[0] == "als"
    # a tuned ALS that popularity beats is not served either
    weak_als = results | {"als": _r(0.05)}
    assert gate("als", weak_als, 10)[0] == "popularity"


def test_a_deliberately_bad_candidate_is_neither_chosen_nor_served() -> None:
    bad = SYNTHETIC.model_copy(
        update={
            "model": SYNTHETIC.model.model_copy(
                update={"no_components": 1, "epochs": 1, "tune_epochs": False}
            )
        }
    )
    ev = train_and_evaluate(_synthetic(_taste_groups()), bad, progress=lambda _m: None)
    m = ev.metrics(10)
    assert set(m["candidates"]) == {"popularity", "als", "lightfm", "rp3beta", "ease", "blend"}
    ndcg = {name: c["ndcg@10"] for name, c in m["candidates"].items()}
    valid = {name: c["validation_ndcg@10"] for name, c in m["candidates"].items()}
    assert ev.chosen == max(valid, key=lambda n: valid[n])  # every family measured
    assert ev.served != "lightfm" and ndcg["lightfm"] < max(ndcg.values())
    assert ndcg[ev.served] >= max(ndcg["popularity"], ndcg["als"])
    assert m["model"]["ndcg@10"] == ndcg[ev.served] == m["served"]["split_ndcg@10"]
    lo, hi = m["ratios"]["ndcg@10_vs_als_ci95"]
    assert lo <= m["ratios"]["ndcg@10_vs_als"] <= hi
    for c in m["candidates"].values():
        assert {"ndcg@10", "recall@10", "precision@10"} <= set(c)
    # the served artefact is the family's refit on every pair: its kind follows the family
    assert ev.artefact.meta["family"] == ev.served
    kinds = {"ease": "item", "rp3beta": "item", "blend": "blend"}
    assert ev.artefact.kind == kinds.get(ev.served, "factors")
    # the blend mixes the best factor and item families, its weight picked on validation
    blend = m["candidates"]["blend"]["params"]
    assert blend["factors"] == max(("als", "lightfm"), key=lambda n: valid[n])
    assert blend["item"] == max(("ease", "rp3beta"), key=lambda n: valid[n])
    assert [t["weight"] for t in m["tuning"]["blend"]] == [0.25, 0.5, 0.75]


def test_ease_disabled_or_too_big_is_reported_and_the_rest_still_serve() -> None:
    s = SYNTHETIC.model_copy(
        update={
            "ease": EaseSettings(max_items=10, sparse_neighbours=0),
            "rp3beta": Rp3Settings(enabled=False),
        }
    )
    ev = train_and_evaluate(_synthetic(_taste_groups()), s, progress=lambda _m: None)
    m = ev.metrics(10)
    assert set(m["candidates"]) == {"popularity", "als", "lightfm"}
    assert ev.served in m["candidates"]
    assert [x["family"] for x in m["skipped"]] == ["rp3beta", "ease", "blend"]
    assert m["skipped"][2]["reason"].startswith("needs a factor model")
    assert m["skipped"][0]["reason"] == "disabled (rp3beta.enabled false)"
    assert " items > ease.max_items 10: " in m["skipped"][1]["reason"]


MOVIES = [101, 102, 103, 104, 105, 106]
GENRES = [["Drama"], ["Drama", "Comedy"], ["Comedy"], ["Action"], ["Action"], ["Drama"]]


def item_artefact() -> Artefact:
    """alice has 101 (weight 2), bob 105 (weight 1); the matrix covers 101-105 (106 has no
    pair): 101 predicts 102 then 103, 105 predicts 104 then 103."""
    b = np.zeros((5, 5), dtype=np.float32)
    b[0, 1], b[0, 2] = 0.8, 0.5
    b[4, 3], b[4, 2] = 0.9, 0.2
    seen = sp.csr_matrix(np.array([[2, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0]], dtype=np.float32))
    return Artefact(
        user_ids=np.array(["alice", "bob"]),
        item_ids=np.array(MOVIES, dtype=np.int64),
        user_factors=np.zeros((2, 0), dtype=np.float32),
        item_factors=np.zeros((6, 0), dtype=np.float32),
        item_bias=np.zeros(6, dtype=np.float32),
        candidates=np.array([True, True, True, True, True, False]),
        popularity=np.array([5.0, 1.0, 4.0, 3.0, 2.0, 0.0]),
        seen=seen,
        trained=seen,
        titles=[f"Movie {m}" for m in MOVIES],
        genres=GENRES,
        meta={"trained_at": 1_700_000_000.0},
        item_matrix=b,
        matrix_items=np.arange(5, dtype=np.int64),
    )


def test_a_blend_is_served_as_its_standardised_parts_weighted() -> None:
    # bob's factors like 104 most; his history (105) predicts 104 then 103 in the matrix
    loaded = Artefact.from_bytes(
        dataclasses.replace(
            item_artefact(),
            user_factors=np.array([[1.0], [1.0]], dtype=np.float32),
            item_factors=np.array([[0.1], [0.2], [0.3], [0.9], [0.5], [0.0]], dtype=np.float32),
            blend_weight=0.5,
        ).to_bytes()
    )
    assert loaded.kind == "blend" and loaded.blend_weight == 0.5
    got = loaded.scores(np.array([1]))
    want = 0.5 * standardised(loaded.factor_scores(np.array([1]))) + 0.5 * standardised(
        loaded.history_scores(loaded.seen[[1]])
    )
    assert got == pytest.approx(want)
    # z-scores: each part's row has mean 0 and standard deviation 1 before weighting
    z = standardised(np.array([[1.0, 2.0, 3.0, 4.0]]))
    assert (float(z.mean()), float(z.std())) == pytest.approx((0.0, 1.0), abs=1e-6)
    rec = Recommender.from_artefact("v-blend", loaded, top_n=3)
    assert [i.movie_id for i in rec.recommend("bob", 2).items] == [104, 103]


def test_an_item_model_is_served_from_the_users_weighted_history() -> None:
    # through bytes: the pair weights and the matrix survive the artefact format
    loaded = Artefact.from_bytes(item_artefact().to_bytes())
    assert loaded.kind == "item" and loaded.meta["kind"] == "item"
    assert loaded.seen.toarray()[0].tolist() == [2, 0, 0, 0, 0, 0]
    rec = Recommender.from_artefact("v-ease", loaded, top_n=3)
    a = rec.recommend("alice", 2)
    assert a.strategy == MODEL
    assert [i.movie_id for i in a.items] == [102, 103]
    assert [i.score for i in a.items] == pytest.approx([2 * 0.8, 2 * 0.5])
    b = rec.recommend("bob", 5, exclude_seen=False)  # scored on the fly, 105 allowed
    assert [i.movie_id for i in b.items][:2] == [104, 103]
    # cold start unchanged: popularity within the genre
    c = rec.recommend("newcomer", 2, genre="Action")
    assert (c.strategy, [i.movie_id for i in c.items]) == (POPULAR_IN_GENRE, [104, 105])
    # similar movies: the matrix's row of the movie
    s = rec.similar(101, 2)
    assert [i.movie_id for i in s.items] == [102, 103]
    # 106 has no pair: nothing learnt of it, so the same genre's popular movies
    other = rec.similar(106, 2)
    assert (other.strategy, [i.movie_id for i in other.items]) == (POPULAR_IN_GENRE, [101, 102])
