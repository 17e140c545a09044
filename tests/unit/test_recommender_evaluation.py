"""The recommender's evaluation protocol and event weights on hand-computed cases: the
per-user time split, precision/recall/NDCG at k, exclusion of seen items, and pairs."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from cinepulse_recommender.artefact import Artefact
from cinepulse_recommender.evaluation import (
    Split,
    evaluate,
    relevant_items,
    time_split,
    top_k,
    user_metrics,
)
from cinepulse_recommender.interactions import Events, event_weights, to_pairs
from cinepulse_recommender.models import item_features, popularity, popularity_scorer
from cinepulse_recommender.publishing import Comparison, compare_with_published, decide
from cinepulse_recommender.settings import RecommenderSettings, WeightSettings
from cinepulse_recommender.training import Evaluation, NotEnoughDataError, train_and_evaluate
from cinepulse_recommender.warehouse import Catalogue, WarehouseData


def _events(rows: list[tuple[str, int, str, float, bool, float]]) -> Events:
    return Events(
        user_id=np.array([r[0] for r in rows], dtype=np.str_),
        movie_id=np.array([r[1] for r in rows], dtype=np.int64),
        kind=np.array([r[2] for r in rows], dtype=np.str_),
        value=np.array([r[3] for r in rows], dtype=np.float64),
        completed=np.array([r[4] for r in rows], dtype=np.bool_),
        at=np.array([r[5] for r in rows], dtype=np.float64),
    )


NAN = math.nan


def test_event_weights_follow_the_settings() -> None:
    w = WeightSettings(
        rating=1.0, min_rating=1.0, watch_completed=1.0, watch_partial=0.5, comment=0.3, click=0.1
    )
    events = _events(
        [
            ("u", 1, "rate", 5.0, False, 0),
            ("u", 1, "rate", 2.5, False, 0),
            ("u", 1, "rate", 0.5, False, 0),  # under min_rating: no weight
            ("u", 1, "watch", 1.0, True, 0),
            ("u", 1, "watch", 0.4, False, 0),
            ("u", 1, "comment", NAN, False, 0),
            ("u", 1, "click", NAN, False, 0),
            ("u", 1, "share", NAN, False, 0),  # a kind the weights do not know
        ]
    )
    assert event_weights(events, w).tolist() == pytest.approx(
        [1.0, 0.5, 0.0, 1.0, 0.2, 0.3, 0.1, 0.0]
    )


def test_pairs_sum_capped_weights_and_keep_the_first_time() -> None:
    w = WeightSettings(max_pair=1.5, click=0.1)
    events = _events(
        [
            ("b", 20, "click", NAN, False, 50),
            ("a", 10, "rate", 5.0, False, 30),
            ("a", 10, "watch", 1.0, True, 10),  # same pair: 1 + 1 capped at 1.5, first at 10
            ("a", 30, "click", NAN, False, 20),
            ("a", 40, "rate", 1.0, False, 5),
        ]
    )
    pairs = to_pairs(events, w, item_ids=np.array([10, 20, 30, 99], dtype=np.int64))
    assert pairs.user_ids.tolist() == ["a", "b"]
    # the catalogue's order is kept; movie 40 (not in it) is appended
    assert pairs.item_ids.tolist() == [10, 20, 30, 99, 40]
    got = [
        (pairs.user_ids[u], int(pairs.item_ids[i]), round(float(wt), 3), float(t))
        for u, i, wt, t in zip(pairs.user, pairs.item, pairs.weight, pairs.at, strict=True)
    ]
    # sorted by user, then time
    assert got == [
        ("a", 40, 0.2, 5.0),
        ("a", 10, 1.5, 10.0),
        ("a", 30, 0.1, 20.0),
        ("b", 20, 0.1, 50.0),
    ]


def _history(user: str, movies: list[int], start: float = 0) -> list[tuple]:
    return [(user, m, "rate", 4.0, False, start + i) for i, m in enumerate(movies)]


def test_time_split_holds_out_each_users_latest_pairs() -> None:
    events = _events(
        _history("long", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])  # 10 pairs: last 2 held out
        + _history("mid", [1, 2, 3, 4, 5, 6])  # 6 pairs: floor(1.2) = 1
        + _history("short", [1, 2, 3])  # under min_user_pairs: train only
    )
    pairs = to_pairs(events, WeightSettings())
    split = time_split(pairs, test_fraction=0.2, min_user_pairs=5)

    def held(s: Split, user: str) -> list[int]:
        u = s.test.user_ids.tolist().index(user)
        return [int(s.test.item_ids[i]) for i in s.test.item[s.test.user == u]]

    assert held(split, "long") == [9, 10]
    assert held(split, "mid") == [6]
    assert held(split, "short") == []
    assert len(split.train) + len(split.test) == len(pairs)
    # every held-out pair is later than every training pair of the same user
    for u in range(pairs.shape[0]):
        tr, te = split.train.at[split.train.user == u], split.test.at[split.test.user == u]
        if len(te):
            assert tr.max() < te.min()


def test_metrics_on_a_hand_computed_list() -> None:
    # hits at ranks 1 and 3 of 4 relevant items; k = 5
    p, r, ndcg = user_metrics(np.array([7, 1, 8, 2, 3]), {7, 8, 50, 51}, k=5)
    assert p == pytest.approx(2 / 5)
    assert r == pytest.approx(2 / 4)
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    ideal = sum(1 / math.log2(i + 2) for i in range(4))
    assert ndcg == pytest.approx(dcg / ideal)
    # a perfect list, and one with nothing relevant
    assert user_metrics(np.array([1, 2]), {1, 2}, k=10)[2] == pytest.approx(1.0)
    assert user_metrics(np.array([3, 4]), {1, 2}, k=10) == (0.0, 0.0, 0.0)


def test_top_k_skips_seen_items_and_non_candidates_and_breaks_ties_by_index() -> None:
    import scipy.sparse as sp

    scores = np.array([[0.9, 0.8, 0.8, 0.1, 0.95], [0.1, 0.2, 0.3, 0.4, 0.5]])
    seen = sp.csr_matrix(np.array([[0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]))
    candidates = np.array([True, True, True, True, False])
    first, second = top_k(scores, seen, candidates, 3)
    assert first.tolist() == [0, 1, 2]  # 4 seen, 1 and 2 tie: lower index first
    assert second.tolist() == [3, 2, 1]  # 4 is not a candidate
    assert top_k(scores, seen, candidates, 10)[0].tolist() == [0, 1, 2, 3]


def test_evaluation_excludes_items_seen_in_training_and_counts_the_same_users() -> None:
    # u1 came to 1..5 then 6 (which nobody has in training); u2 to 1..4, then 5
    events = _events(
        _history("u1", [1, 2, 3, 4, 5, 6])
        + _history("u2", [1, 2, 3, 4, 5], start=100)
        + _history("u3", [9], start=200)  # train only: movie 9 becomes a candidate
    )
    pairs = to_pairs(events, WeightSettings())
    split = time_split(pairs, 0.2, 5)
    relevant = relevant_items(split)
    ids = pairs.item_ids.tolist()
    assert {pairs.user_ids[u]: {ids[i] for i in items} for u, items in relevant.items()} == {
        "u2": {5}  # u1's movie 6 has no training pair anywhere: not a candidate
    }
    result = evaluate(popularity_scorer(split.train), split, 2)
    # popularity over training: movies 1-4 have 2 users, 5 and 9 one; u2 saw 1-4,
    # so its list is [5, 9] (tie on one user: 5 weighs the same, lower index first)
    assert result.users == 1
    assert result.precision == pytest.approx(1 / 2)
    assert result.recall == pytest.approx(1.0)
    assert result.ndcg == pytest.approx(1.0)


def test_popularity_counts_users_and_breaks_ties_by_weight() -> None:
    events = _events(
        [
            ("a", 1, "rate", 5.0, False, 0),
            ("b", 1, "click", NAN, False, 0),
            ("a", 2, "rate", 5.0, False, 0),
            ("b", 2, "rate", 5.0, False, 0),
            ("c", 3, "click", NAN, False, 0),
        ]
    )
    pairs = to_pairs(events, WeightSettings())
    pop = popularity(pairs)
    order = [int(pairs.item_ids[i]) for i in np.argsort(-pop)]
    assert order == [2, 1, 3]


def test_item_features_are_identity_plus_frequent_tags_normalised() -> None:
    m, names = item_features(
        3,
        [(0, "genre:Drama"), (1, "genre:Drama"), (0, "keyword:7"), (2, "keyword:8")],
        min_movies=2,
    )
    assert names == ["genre:Drama"]  # keywords on one movie only are dropped
    assert m.shape == (3, 4)
    dense = m.toarray()
    assert dense.sum(axis=1) == pytest.approx([1, 1, 1])
    assert dense[0].tolist() == pytest.approx([0.5, 0, 0, 0.5])
    assert dense[2].tolist() == pytest.approx([0, 0, 1, 0])


def test_settings_need_the_database_and_keep_k_within_top_n(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    monkeypatch.delenv("CINEPULSE_POSTGRES__DSN", raising=False)
    with pytest.raises(ValidationError, match="postgres"):
        RecommenderSettings()
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", "postgresql://u:p@h/db")
    assert RecommenderSettings().port == 8001
    with pytest.raises(ValidationError, match="top_n"):
        RecommenderSettings(top_n=5)


def _taste_groups(users: int = 60, items: int = 40, per_user: int = 12) -> Events:
    """Two taste groups: even users come to even movies, odd users to odd ones (each in
    a random order); the group's movies are equally popular overall."""
    rng = np.random.default_rng(7)
    rows = []
    for u in range(users):
        group = [m for m in range(items) if m % 2 == u % 2]
        for t, m in enumerate(rng.permutation(group)[:per_user]):
            rows.append((f"u{u}", int(m) + 1, "rate", 4.0, False, float(u * 100 + t)))
    return _events(rows)


SYNTHETIC = RecommenderSettings(
    postgres={"dsn": "postgresql://u:p@h/db"},
    model={"epochs": 20, "epoch_step": 10, "no_components": 8, "threads": 1},
    als={"tune": False, "factors": 8},
)


def _synthetic(events: Events) -> WarehouseData:
    catalogue = Catalogue(
        movie_ids=np.arange(1, 41, dtype=np.int64),
        titles={m: f"Movie {m}" for m in range(1, 41)},
        genres={m: ["Drama" if m % 2 else "Comedy"] for m in range(1, 41)},
        tags=[(m, "genre:Drama" if m % 2 else "genre:Comedy") for m in range(1, 41)],
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return WarehouseData(events, catalogue, now, now)


def test_the_whole_training_step_on_synthetic_tastes_beats_popularity() -> None:
    s = SYNTHETIC
    ev = train_and_evaluate(_synthetic(_taste_groups()), s, progress=lambda _m: None)
    metrics = ev.metrics(10)
    assert metrics["model"]["users"] == metrics["popularity"]["users"] == 60
    assert metrics["model"]["ndcg@10"] > 1.2 * metrics["popularity"]["ndcg@10"], metrics
    assert [c["epochs"] for c in metrics["tuning"]["lightfm"]] == [10, 20]
    # the served family is refitted on every pair, and knows every movie of the catalogue
    assert ev.artefact.item_ids.tolist() == list(range(1, 41))
    assert ev.artefact.trained.nnz == metrics["served"]["refit_train_pairs"] == 60 * 12
    assert metrics["split"]["train_pairs"] < 60 * 12
    assert ev.artefact.seen.nnz == 60 * 12

    with pytest.raises(NotEnoughDataError):
        train_and_evaluate(_synthetic(_events([])), s, progress=lambda _m: None)


def compare(version: str, published: Artefact, ev: Evaluation) -> Comparison:
    scorer = ev.model.model.scorer()
    return compare_with_published(version, published, scorer, ev.pairs, ev.split, ev.relevant, 10)


#: the split model is served (no refit), so its artefact can stand for "the same model"
NO_REFIT = SYNTHETIC.model_copy(
    update={"evaluation": SYNTHETIC.evaluation.model_copy(update={"refit": False})}
)


def test_publish_decision_against_the_published_model_on_the_same_split() -> None:
    ev = train_and_evaluate(_synthetic(_taste_groups()), NO_REFIT, progress=lambda _m: None)
    assert decide(None, 0.0, 10) == (True, "first model: nothing published yet")

    # the same model published: same held-out pairs, same answers, not better (an item
    # model here, scored from this run's training pairs; the weak one below has factors)
    assert ev.artefact.kind == "item", ev.served
    same = compare("v1", ev.artefact, ev)
    assert same.dropped_pairs == 0
    assert same.candidate.ndcg == pytest.approx(same.published.ndcg)
    published, reason = decide(same, 0.0, 10)
    assert not published and reason.startswith("not better: ndcg@10")

    # a published model that was trained on this run's held-out pairs: they are left out of
    # the comparison (it would otherwise win by having seen the answers)
    leaky = dataclasses.replace(ev.artefact, trained=ev.artefact.seen)
    compared = compare("v0", leaky, ev)
    assert compared.dropped_pairs == metrics_relevant(ev)
    assert compared.candidate.users == 0
    assert decide(compared, 0.0, 10)[0] is False

    # a weaker published model (popularity only: no users known) loses
    n_items = len(ev.artefact.item_ids)
    weak = dataclasses.replace(
        ev.artefact,
        user_ids=np.array(["someone-else"]),
        user_factors=np.zeros((1, 1), dtype=np.float32),
        item_factors=np.zeros((n_items, 1), dtype=np.float32),
        item_bias=np.zeros(n_items, dtype=np.float32),
        item_matrix=None,
        matrix_items=None,
    )
    beaten = compare("v0", weak, ev)
    assert beaten.candidate.ndcg > beaten.published.ndcg
    published, reason = decide(beaten, 0.05, 10)
    assert published and "beats published v0" in reason


def metrics_relevant(ev: Evaluation) -> int:
    return sum(len(v) for v in ev.relevant.values())
