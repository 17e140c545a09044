"""One training run: warehouse -> pairs -> split -> model and baselines -> registry.

1. Read the facts of the window and the catalogue from one snapshot.
2. Pairs (:mod:`~cinepulse_recommender.interactions`), the time split and, inside its
   training part, the validation split (:mod:`~cinepulse_recommender.evaluation`).
3. Popularity, implicit's ALS and LightFM trained on the training part (ALS and LightFM
   tuned on the validation split), all three evaluated on the test part: same users, same
   candidates, same exclusions.
4. The model is saved as a ``candidate`` with every figure; the published model (if any)
   is evaluated on this run's split too, on the held-out pairs it was not trained on (the
   candidate on the same pairs), and the candidate is published only if its NDCG@k is
   higher (by ``min_improvement``), or if nothing is published yet.

The artefact is the model that was evaluated (fitted on the training part): what is
measured is what is served. Every pair of the window still counts as "seen" when serving.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from cinepulse_common.postgres import connect
from cinepulse_recommender import registry
from cinepulse_recommender.artefact import Artefact
from cinepulse_recommender.evaluation import (
    Result,
    Scorer,
    Split,
    evaluate,
    relevant_items,
    time_split,
)
from cinepulse_recommender.interactions import Pairs, to_pairs
from cinepulse_recommender.models import (
    Trained,
    item_features,
    popularity,
    popularity_scorer,
    train_als,
    train_lightfm,
)
from cinepulse_recommender.settings import RecommenderSettings
from cinepulse_recommender.warehouse import WarehouseData, read_training_data

Progress = Callable[[str], None]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stderr_progress(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


class NotEnoughDataError(RuntimeError):
    """Too few interactions to split and evaluate."""


@dataclass
class Evaluation:
    pairs: Pairs
    split: Split
    relevant: dict[int, set[int]]
    model: Trained
    als: Trained
    results: dict[str, Result]
    popularity_seconds: float
    artefact: Artefact

    def metrics(self, k: int) -> dict[str, Any]:
        r = self.results
        ndcg = {name: res.ndcg for name, res in r.items()}

        def ratio(a: float, b: float) -> float | None:
            return a / b if b > 0 else None

        return {
            "k": k,
            "split": {
                "train_pairs": len(self.split.train),
                "test_pairs": len(self.split.test),
                "users_evaluated": r["model"].users,
                "relevant_pairs": sum(len(v) for v in self.relevant.values()),
                "candidates": int(self.split.candidates.sum()),
            },
            "model": r["model"].as_dict(k)
            | {
                "train_seconds": round(self.model.seconds, 3),
                "fit_seconds": round(self.model.fit_seconds, 3),
            },
            "popularity": r["popularity"].as_dict(k)
            | {"train_seconds": round(self.popularity_seconds, 3)},
            "als": r["als"].as_dict(k)
            | {
                "train_seconds": round(self.als.seconds, 3),
                "fit_seconds": round(self.als.fit_seconds, 3),
                "params": self.als.params,
            },
            "ratios": {
                f"ndcg@{k}_vs_popularity": ratio(ndcg["model"], ndcg["popularity"]),
                f"ndcg@{k}_vs_als": ratio(ndcg["model"], ndcg["als"]),
            },
            "tuning": {
                "lightfm_epochs": self.model.tuning,
                "als_best": max(self.als.tuning, key=lambda t: t[f"ndcg@{k}"])
                if self.als.tuning
                else None,
                "als_trials": len(self.als.tuning),
            },
        }


def window(s: RecommenderSettings, now: datetime) -> tuple[datetime, datetime]:
    since = now - timedelta(days=s.window_days) if s.window_days else EPOCH
    return since, now


def make_pairs(data: WarehouseData, s: RecommenderSettings) -> Pairs:
    return to_pairs(data.events, s.weights, data.catalogue.movie_ids)


def features_for(pairs: Pairs, data: WarehouseData, s: RecommenderSettings) -> Any:
    pos = {int(m): i for i, m in enumerate(pairs.item_ids.tolist())}
    tags = [(pos[m], t) for m, t in data.catalogue.tags if m in pos]
    matrix, _names = item_features(pairs.shape[1], tags, s.model.min_feature_movies)
    return matrix


def train_and_evaluate(
    data: WarehouseData, s: RecommenderSettings, progress: Progress = stderr_progress
) -> Evaluation:
    k = s.evaluation.k
    ev = s.evaluation
    pairs = make_pairs(data, s)
    split = time_split(pairs, ev.test_fraction, ev.min_user_pairs)
    relevant = relevant_items(split)
    if not relevant:
        raise NotEnoughDataError(
            f"no user has {ev.min_user_pairs}+ movies with held-out ones to evaluate "
            f"({len(pairs)} pairs of {pairs.shape[0]} users)"
        )
    validation = time_split(split.train, ev.test_fraction, ev.min_user_pairs)
    progress(
        f"{len(data.events):,} events -> {len(pairs):,} pairs of {pairs.shape[0]:,} users and "
        f"{int(split.candidates.sum()):,} movies; {len(split.train):,} train / "
        f"{len(split.test):,} held out; {len(relevant):,} users evaluated"
    )
    features = features_for(pairs, data, s)
    results: dict[str, Result] = {}

    t0 = time.perf_counter()
    pop_scorer = popularity_scorer(split.train)
    pop_seconds = time.perf_counter() - t0
    results["popularity"] = evaluate(pop_scorer, split, k, relevant=relevant)
    progress(f"popularity: ndcg@{k} {results['popularity'].ndcg:.4f}")

    als = train_als(split.train, s.als, s.model.threads, k, validation)
    results["als"] = evaluate(als.factors.scorer(), split, k, relevant=relevant)
    progress(
        f"ALS ({als.seconds:.1f}s, {len(als.tuning)} tuning trials): "
        f"ndcg@{k} {results['als'].ndcg:.4f}"
    )

    model = train_lightfm(split.train, features, s.model, k, validation)
    results["model"] = evaluate(model.factors.scorer(), split, k, relevant=relevant)
    progress(
        f"LightFM ({model.seconds:.1f}s, {model.params['epochs']} epochs): "
        f"ndcg@{k} {results['model'].ndcg:.4f}"
    )
    titles = [data.catalogue.titles.get(int(m), "") for m in pairs.item_ids.tolist()]
    genres = [data.catalogue.genres.get(int(m), []) for m in pairs.item_ids.tolist()]
    artefact = Artefact(
        user_ids=pairs.user_ids,
        item_ids=pairs.item_ids,
        user_factors=model.factors.user,
        item_factors=model.factors.item,
        item_bias=model.factors.item_bias,
        candidates=split.candidates,
        popularity=popularity(pairs),
        seen=pairs.matrix(),
        trained=split.train.matrix(),
        titles=titles,
        genres=genres,
        meta={"trained_at": time.time(), "k": k},
    )
    return Evaluation(pairs, split, relevant, model, als, results, pop_seconds, artefact)


# --- comparing with the published model -----------------------------------------------------
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
    champion: Artefact, pairs: Pairs
) -> tuple[Scorer, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The published model's answers over this run's users and items, as it serves them: a
    user it knows gets its scores, another its popularity; items it does not know (or did
    not serve) score -inf."""
    cu = _positions(pairs.user_ids, champion.user_ids)
    ci = _positions(pairs.item_ids, champion.item_ids)
    served = ci >= 0
    served[served] = champion.candidates[ci[served]]
    cols = ci[served]
    pop = champion.popularity[cols].astype(np.float32)

    def score(users: npt.NDArray[np.int64]) -> npt.NDArray[np.floating]:
        out = np.full((len(users), pairs.shape[1]), -np.inf, dtype=np.float32)
        known = cu[users] >= 0
        block = np.full((len(users), len(cols)), 0.0, dtype=np.float32)
        if known.any():
            f = champion.user_factors[cu[users][known]]
            block[known] = f @ champion.item_factors[cols].T + champion.item_bias[cols]
        block[~known] = pop
        out[:, served] = block
        return out

    return score, cu, ci


def compare_with_published(
    champion_version: str, champion: Artefact, ev: Evaluation, k: int
) -> Comparison:
    scorer, cu, ci = published_scorer(champion, ev.pairs)
    trained = champion.trained.tolil().rows
    relevant: dict[int, set[int]] = {}
    dropped = 0
    for u, items in ev.relevant.items():
        keep = set()
        for i in items:
            if cu[u] >= 0 and ci[i] >= 0 and int(ci[i]) in trained[cu[u]]:
                dropped += 1
            else:
                keep.add(i)
        if keep:
            relevant[u] = keep
    return Comparison(
        version=champion_version,
        candidate=evaluate(ev.model.factors.scorer(), ev.split, k, relevant=relevant),
        published=evaluate(scorer, ev.split, k, relevant=relevant),
        dropped_pairs=dropped,
    )


# --- the run ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    version: str
    published: bool
    reason: str
    metrics: dict[str, Any]
    counts: dict[str, int]
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        k = self.metrics["k"]
        return {
            "version": self.version,
            "status": "published" if self.published else "rejected",
            "reason": self.reason,
            f"ndcg@{k}": self.metrics["model"][f"ndcg@{k}"],
            f"popularity_ndcg@{k}": self.metrics["popularity"][f"ndcg@{k}"],
            f"als_ndcg@{k}": self.metrics["als"][f"ndcg@{k}"],
            "counts": self.counts,
            "seconds": round(self.seconds, 1),
        }


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


def run_training(
    s: RecommenderSettings,
    *,
    now: datetime | None = None,
    progress: Progress = stderr_progress,
) -> Outcome:
    t0 = time.perf_counter()
    now = now or datetime.now(UTC)
    since, until = window(s, now)
    with connect(s.postgres) as conn:
        data = read_training_data(conn, since, until, list(s.model.item_features))
    progress(f"read {len(data.events):,} events and {len(data.catalogue.movie_ids):,} movies")
    ev = train_and_evaluate(data, s, progress)
    k = s.evaluation.k
    metrics = ev.metrics(k)
    blob = ev.artefact.to_bytes()
    at = ev.pairs.at
    candidate = registry.Candidate(
        version="",
        data_from=datetime.fromtimestamp(float(at.min()), UTC) if len(at) else None,
        data_to=datetime.fromtimestamp(float(at.max()), UTC) if len(at) else None,
        n_users=ev.pairs.shape[0],
        n_items=int(ev.split.candidates.sum()),
        n_interactions=len(ev.pairs),
        params={
            "lightfm": ev.model.params,
            "als": ev.als.params,
            "weights": s.weights.model_dump(),
            "evaluation": s.evaluation.model_dump(),
            "window": {"since": since.isoformat(), "until": until.isoformat()},
            "events": len(data.events),
        },
        metrics=metrics,
        artefact=blob,
    )
    version = f"{now:%Y%m%dT%H%M%SZ}-{candidate.sha256[:8]}"
    candidate = dataclasses.replace(candidate, version=version)
    with connect(s.postgres, autocommit=True) as conn:
        registry.insert_candidate(conn, candidate)
        progress(f"saved {version} as a candidate ({len(blob) / 1e6:.1f} MB artefact)")
        champion_version = registry.newest_published(conn)
        comparison = None
        if champion_version is not None:
            champion = Artefact.from_bytes(registry.artefact_bytes(conn, champion_version))
            comparison = compare_with_published(champion_version, champion, ev, k)
            metrics["published_comparison"] = {
                "version": champion_version,
                "dropped_pairs": comparison.dropped_pairs,
                "candidate": comparison.candidate.as_dict(k),
                "published": comparison.published.as_dict(k),
            }
        publish, reason = decide(comparison, s.evaluation.min_improvement, k)
        published, reason = registry.decide(
            conn, version, publish, reason, champion_version, metrics
        )
    progress(f"{version}: {'published' if published else 'rejected'} ({reason})")
    return Outcome(
        version=version,
        published=published,
        reason=reason,
        metrics=metrics,
        counts={
            "events": len(data.events),
            "users": candidate.n_users,
            "movies": candidate.n_items,
            "pairs": candidate.n_interactions,
        },
        seconds=time.perf_counter() - t0,
        params=candidate.params,
    )
