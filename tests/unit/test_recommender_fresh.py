"""Fresh recommendations without a database: a user's history read at request time
(weighted as training weighs it) is scored by the served version, whatever its kind (factor
model folded in, item model, blend); an unchanged history keeps the precomputed path; the
history cache expires and is bounded; the ALS fold-in agrees with implicit's own user step."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import psycopg
import pytest
import scipy.sparse as sp
from psycopg_pool import PoolTimeout

from cinepulse_recommender.app import READ_TIMEOUTS_BEFORE_BACKOFF, Service
from cinepulse_recommender.artefact import Artefact
from cinepulse_recommender.fresh import History, TtlCache, weigh
from cinepulse_recommender.recommend import FRESH, MODEL, POPULAR, PRECOMPUTED, Recommender
from cinepulse_recommender.settings import RecommenderSettings, WeightSettings
from tests.unit.test_recommender_serving import NO_DB, artefact

# the serving tests' catalogue: 101 102 106 dramas (106 no candidate), 103 comedy,
# 104 105 action; alice saw 101 (weight 1), bob 105


def history(pairs: dict[int, float]) -> History:
    ids = sorted(pairs)
    return History(
        np.array(ids, dtype=np.int64), np.array([pairs[m] for m in ids], dtype=np.float32)
    )


def item_artefact(blend: float | None = None) -> Artefact:
    """An item model over the candidates: each drama predicts the other dramas, each action
    movie the other action movie, the comedy 102 and 103 a little each other."""
    a = artefact()
    m = np.zeros((5, 5), dtype=np.float32)  # matrix_items 0..4 (106 has no pairs)
    m[0, 1] = m[1, 0] = 1.0
    m[3, 4] = m[4, 3] = 1.0
    m[1, 2] = m[2, 1] = 0.2
    a.item_matrix, a.matrix_items, a.blend_weight = m, np.arange(5, dtype=np.int64), blend
    return a


def ids(answer: object) -> list[int]:
    return [i.movie_id for i in answer.items]  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["factors", "item", "blend"])
def test_a_new_event_changes_the_answer_without_retraining(kind: str) -> None:
    a = {"factors": artefact(), "item": item_artefact(), "blend": item_artefact(0.5)}[kind]
    rec = Recommender.from_artefact("v1", a, top_n=3)
    before = rec.recommend("alice", 2)
    # the history the version was built on: the precomputed answer, as without history
    same = rec.recommend("alice", 2, history=history({101: 1.0}))
    assert (same.path, ids(same)) == (PRECOMPUTED, ids(before))
    assert ids(before)[0] == 102  # a drama
    # alice watched 102 since: scored from that history, seen ones left out
    fresh = rec.recommend("alice", 2, history=history({101: 1.0, 102: 2.0}))
    assert (fresh.strategy, fresh.path) == (MODEL, FRESH)
    assert ids(fresh)[0] == 103 and not {101, 102, 106} & set(ids(fresh))  # 106: no candidate
    # exclude_seen=false and a genre go through the fresh history too
    everything = rec.recommend(
        "alice", 5, exclude_seen=False, history=history({104: 2.0, 105: 2.0})
    )
    assert set(ids(everything)[:2]) == {104, 105}, ids(everything)
    drama = rec.recommend("alice", 5, genre="Drama", history=history({104: 2.0}))
    assert set(ids(drama)) <= {101, 102}


def test_a_cached_history_is_scored_once_per_version() -> None:
    rec = Recommender.from_artefact("v1", item_artefact(), top_n=3)
    h = history({101: 1.0, 102: 2.0})
    first = rec.recommend("alice", 2, history=h)
    memo = h.views[("v1", "fresh")]
    assert memo["changed"] is True and "top" in memo
    again = rec.recommend("alice", 2, history=h)
    assert (again.path, ids(again)) == (FRESH, ids(first))
    # a genre the top-N cannot fill is scored over every item
    action = rec.recommend("alice", 2, genre="Action", history=h)
    assert action.path == FRESH and set(ids(action)) <= {104, 105}


@pytest.mark.parametrize("kind", ["factors", "item"])
def test_a_user_the_version_never_saw_is_scored_from_their_history(kind: str) -> None:
    a = {"factors": artefact(), "item": item_artefact()}[kind]
    rec = Recommender.from_artefact("v1", a, top_n=3)
    assert rec.recommend("carol", 2).strategy == POPULAR
    assert rec.recommend("carol", 2, history=history({})).strategy == POPULAR
    fresh = rec.recommend("carol", 1, history=history({104: 1.0, 999: 1.0}))  # 999: unknown
    assert (fresh.strategy, fresh.path, ids(fresh)) == (MODEL, FRESH, [105])


def test_a_failed_read_answers_from_the_version_and_says_so() -> None:
    rec = Recommender.from_artefact("v1", artefact(), top_n=3)
    stale = rec.recommend("alice", 2, stale=True)
    assert (stale.strategy, stale.path, ids(stale)) == ("model_stale", PRECOMPUTED, [102, 103])
    assert rec.recommend("nobody", 2, stale=True).strategy == POPULAR


def test_history_is_weighted_as_training_weighs_it() -> None:
    rows = [
        (7, "rate", 4.0, False),  # 0.8
        (7, "watch", 1.0, True),  # + 1.0, capped at 2.0 with the click below
        (7, "click", None, False),
        (3, "watch", 0.5, False),  # 0.5 x 0.5
        (5, "rate", 1.0, False),  # under min_rating: no pair
        (9, "comment", None, False),
    ]
    h = weigh(rows, WeightSettings(min_rating=2.0, max_pair=1.85))
    assert h.movie_ids.tolist() == [3, 7, 9]
    assert h.weights.tolist() == pytest.approx([0.25, 1.85, 0.5])
    assert len(weigh([], WeightSettings())) == 0


def test_the_history_cache_expires_and_is_bounded() -> None:
    now = [0.0]
    cache: TtlCache[str, int] = TtlCache(2, 5.0, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a used last: b goes first
    cache.put("c", 3)
    assert (cache.get("b"), cache.get("a"), cache.get("c"), len(cache)) == (None, 1, 3, 2)
    now[0] = 5.0
    assert cache.get("a") is None and len(cache) == 1
    off: TtlCache[str, int] = TtlCache(10, 0.0)
    off.put("a", 1)
    assert off.get("a") is None


def test_the_als_fold_in_is_implicits_user_step() -> None:
    """Folding a user's own pairs in against the fitted item factors gives (nearly) the user
    factor ALS fitted: the same ranking of the items."""
    from implicit.cpu.als import AlternatingLeastSquares

    rng = np.random.default_rng(1)
    users, items = 60, 40
    dense = (rng.random((users, items)) < 0.15) * rng.choice([0.5, 1.0, 2.0], (users, items))
    m = sp.csr_matrix(dense.astype(np.float32))
    als = AlternatingLeastSquares(
        factors=8, regularization=0.1, alpha=10.0, iterations=30, random_state=0, num_threads=1
    )
    als.fit(m, show_progress=False)
    a = artefact()
    n = items
    a.user_ids = np.array([f"u{i}" for i in range(users)])
    a.item_ids = np.arange(1, n + 1, dtype=np.int64)
    a.user_factors = np.asarray(als.user_factors, dtype=np.float32)
    a.item_factors = np.asarray(als.item_factors, dtype=np.float32)
    a.item_bias = np.zeros(n, dtype=np.float32)
    a.candidates = np.ones(n, dtype=bool)
    a.popularity = np.ones(n)
    a.seen = a.trained = m
    a.titles, a.genres = [""] * n, [[] for _ in range(n)]
    a.meta = {"fold_in": {"regularization": 0.1, "alpha": 10.0}}
    rec = Recommender.from_artefact("v1", a, top_n=5)
    agree = []
    for u in range(users):
        row = m[u]
        folded = rec.fold_in(row.indices.astype(np.int64), row.data)
        fitted = a.user_factors[u]
        cos = folded @ fitted / (np.linalg.norm(folded) * np.linalg.norm(fitted) + 1e-12)
        agree.append(cos)
    assert float(np.median(agree)) > 0.99, np.percentile(agree, [5, 50])


def format_1(a: Artefact) -> Artefact:
    """``a`` written as format 1 did: the seen pairs without their weights."""
    with np.load(io.BytesIO(a.to_bytes()), allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files if name != "seen_data"}
    meta = json.loads(arrays["meta"].tobytes().decode()) | {"format": 1}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    return Artefact.from_bytes(buf.getvalue())


def test_a_format_1_artefact_compares_the_items_only() -> None:
    a = artefact()
    a.seen = sp.csr_matrix(a.seen.multiply(2.5))  # alice's 101 weighed 2.5, bob's 105 too
    old = format_1(a)
    assert not old.seen_weighted and a.seen_weighted
    rec = Recommender.from_artefact("v1", old, top_n=3)
    # the items the version was built on, whatever their weight: the precomputed answer
    same = rec.recommend("alice", 2, history=history({101: 2.5}))
    assert same.path == PRECOMPUTED
    assert rec.recommend("alice", 2, history=history({101: 2.5, 102: 1.0})).path == FRESH
    # format 2 compares the weights too
    weighted = Recommender.from_artefact("v1", Artefact.from_bytes(a.to_bytes()), top_n=3)
    assert weighted.recommend("alice", 2, history=history({101: 2.5})).path == PRECOMPUTED
    assert weighted.recommend("alice", 2, history=history({101: 1.0})).path == FRESH


def failing_service(errors: list[Exception]) -> Service:
    service = Service(RecommenderSettings(postgres=NO_DB))

    async def read(user_id: str) -> History:
        if errors:
            raise errors.pop(0)
        return history({101: 1.0})

    service._query_history = read  # type: ignore[method-assign]
    return service


def test_a_read_timeout_does_not_stop_every_users_reads() -> None:
    async def scenario() -> None:
        service = failing_service([TimeoutError(), PoolTimeout("pool busy")])
        assert await service.history("u1") is None  # one user's timeout: no backoff
        assert service.reads_resume_at == 0.0
        assert await service.history("u2") is None  # two in a row: still none
        assert service.reads_resume_at == 0.0
        assert await service.history("u3") is not None  # a read succeeds: the count restarts
        assert service.read_timeouts == 0
        service = failing_service([TimeoutError()] * READ_TIMEOUTS_BEFORE_BACKOFF)
        for i in range(READ_TIMEOUTS_BEFORE_BACKOFF):
            assert await service.history(f"u{i}") is None
        assert service.reads_resume_at > 0  # timeouts in a row: the database is in trouble
        assert await service.history("other") is None  # skipped during the backoff

    asyncio.run(scenario())


def test_a_connection_error_starts_the_backoff_at_once() -> None:
    async def scenario() -> None:
        service = failing_service([psycopg.OperationalError("connection refused")])
        assert await service.history("u1") is None
        assert service.reads_resume_at > 0
        assert await service.history("u2") is None  # not tried: the errors list is empty
        assert service.reads_resume_at > 0

    asyncio.run(scenario())


def test_requests_sharing_one_timed_out_read_count_it_once() -> None:
    async def scenario() -> None:
        service = Service(RecommenderSettings(postgres=NO_DB))
        gate = asyncio.Event()

        async def slow(user_id: str) -> History:
            await gate.wait()
            raise TimeoutError

        service._query_history = slow  # type: ignore[method-assign]
        waiting = [asyncio.ensure_future(service.history("u1")) for _ in range(5)]
        await asyncio.sleep(0)
        gate.set()
        assert await asyncio.gather(*waiting) == [None] * 5
        assert service.read_timeouts == 1 and service.reads_resume_at == 0.0

    asyncio.run(scenario())
