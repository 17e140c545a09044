"""One training run: warehouse -> pairs -> split -> candidates -> the served model -> registry.

1. Read the facts of the window and the catalogue from one snapshot.
2. Pairs (:mod:`~cinepulse_recommender.interactions`), the time split and, inside its
   training part, the validation split (:mod:`~cinepulse_recommender.evaluation`).
3. Candidates trained on the training part, each tuned on the validation split only:
   popularity, implicit's ALS, LightFM, RP3beta and EASE^R (the last two skipped above
   their ``max_items`` items, and the run says so), and a blend of the best factor and
   item models (:mod:`~cinepulse_recommender.blend`). Every one is evaluated on the test part: same users, same candidates,
   same exclusions.
4. The model served is the one with the best NDCG@k on the validation split, whatever its
   family, unless a baseline (popularity, ALS) beats it on the test part: then that
   baseline (:func:`~cinepulse_recommender.publishing.gate`).
5. It is refitted with its chosen parameters on every pair of the window (the latest 20%
   are the most predictive in a time split; a model fitted without them would never see
   them); the held-out score of the split model and the refit's training size are recorded
   (``evaluation.refit`` false: the split model is served, as measured).
6. The version is saved as a ``candidate`` with every figure and published only if its
   split model beats the published model on this run's held-out pairs that the published
   model was not trained on (:mod:`~cinepulse_recommender.publishing`), or if nothing is
   published yet.
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

from cinepulse_common.postgres import connect
from cinepulse_recommender import registry
from cinepulse_recommender.artefact import Artefact
from cinepulse_recommender.blend import train_blend
from cinepulse_recommender.evaluation import (
    Result,
    Split,
    bootstrap_ratio,
    evaluate,
    relevant_items,
    time_split,
)
from cinepulse_recommender.interactions import Pairs, to_pairs
from cinepulse_recommender.itemmodels import Skipped, train_item_model
from cinepulse_recommender.models import (
    Blend,
    Factors,
    ItemModel,
    Model,
    Trained,
    item_features,
    popularity,
    train_als,
    train_lightfm,
    train_popularity,
)
from cinepulse_recommender.publishing import compare_with_published, decide, gate
from cinepulse_recommender.settings import RecommenderSettings
from cinepulse_recommender.warehouse import WarehouseData, read_training_data

Progress = Callable[[str], None]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stderr_progress(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


class NotEnoughDataError(RuntimeError):
    """Too few interactions to split and evaluate."""


#: the candidate families, in the order ties on validation are broken (simplest first)
FAMILIES = ("popularity", "als", "lightfm", "rp3beta", "ease", "blend")
LABELS = {
    "popularity": "popularity",
    "als": "ALS",
    "lightfm": "LightFM",
    "rp3beta": "RP3beta",
    "ease": "EASE^R",
    "blend": "blend",
}


@dataclass
class Evaluation:
    pairs: Pairs
    split: Split
    relevant: dict[int, set[int]]
    candidates: dict[str, Trained]  # by family, fitted on the training part
    results: dict[str, Result]  # each candidate on the test part
    skipped: list[Skipped]
    chosen: str  # best on validation
    served: str  # after the baseline gate
    why: str
    artefact: Artefact  # the served family, refitted on every pair (or the split model)
    refit_pairs: int
    refit_seconds: float

    @property
    def model(self) -> Trained:
        """The served family's split model (what was measured on the held-out pairs)."""
        return self.candidates[self.served]

    def interval(self, a: str, b: str) -> list[float] | None:
        """The paired bootstrap 95% interval of a's NDCG over b's (None if b scores 0)."""
        x, y = self.results[a].per_user, self.results[b].per_user
        if x is None or y is None or not y.any():
            return None
        return list(bootstrap_ratio(x, y))

    def metrics(self, k: int) -> dict[str, Any]:
        r = self.results
        ndcg = {name: res.ndcg for name, res in r.items()}

        def ratio(a: float, b: float) -> float | None:
            return a / b if b > 0 else None

        def entry(name: str) -> dict[str, Any]:
            t = self.candidates[name]
            return r[name].as_dict(k) | {
                "family": name,
                f"validation_ndcg@{k}": t.validation_ndcg,
                "train_seconds": round(t.seconds, 3),
                "fit_seconds": round(t.fit_seconds, 3),
                "params": t.params,
            }

        served = self.served
        return {
            "k": k,
            "split": {
                "train_pairs": len(self.split.train),
                "test_pairs": len(self.split.test),
                "users_evaluated": r[served].users,
                "relevant_pairs": sum(len(v) for v in self.relevant.values()),
                "candidates": int(self.split.candidates.sum()),
            },
            "candidates": {name: entry(name) for name in self.candidates},
            "skipped": [{"family": s.family, "reason": s.reason} for s in self.skipped],
            "served": {
                "family": served,
                "chosen_on_validation": self.chosen,
                "why": self.why,
                f"split_ndcg@{k}": ndcg[served],
                "refit": self.refit_pairs > len(self.split.train),
                "refit_train_pairs": self.refit_pairs,
                "refit_seconds": round(self.refit_seconds, 3),
            },
            # the served model and the two baselines under their own keys (the CLI, the
            # bench and older rows of the registry read these)
            "model": entry(served),
            "popularity": entry("popularity"),
            "als": entry("als"),
            "ratios": {
                f"ndcg@{k}_vs_popularity": ratio(ndcg[served], ndcg["popularity"]),
                f"ndcg@{k}_vs_als": ratio(ndcg[served], ndcg["als"]),
                f"ndcg@{k}_vs_als_ci95": self.interval(served, "als"),
            },
            "tuning": {name: t.tuning for name, t in self.candidates.items() if t.tuning},
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


def fold_in_params(served: str, candidates: dict[str, Trained]) -> dict[str, float] | None:
    """ALS's regularization and alpha when the served model's factors are ALS's: serving
    folds a user's fresh history in with them (None: a LightFM or popularity model, see
    :meth:`~cinepulse_recommender.recommend.Recommender.fold_in`)."""
    family = served
    if served == "blend":
        family = str(candidates[served].params.get("factors"))
    if family != "als" or family not in candidates:
        return None
    p = candidates[family].params
    return {"regularization": float(p["regularization"]), "alpha": float(p["alpha"])}


def validation_score(t: Trained, validation: Split, k: int) -> float:
    """NDCG@k on the validation split of ``t``'s family with its chosen parameters: from
    its tuning when it was tuned, else fitted on the validation split's training part."""
    if t.validation_ndcg is None:
        assert t.refit is not None
        model = t.refit(validation.train)
        t.validation_ndcg = evaluate(model.scorer(), validation, k).ndcg
    return t.validation_ndcg


def build_artefact(
    model: Model,
    pairs: Pairs,
    split: Split,
    fitted_on: Pairs,
    data: WarehouseData,
    meta: dict[str, Any],
) -> Artefact:
    """What serving needs of ``model`` (fitted on ``fitted_on``); every pair of the window
    counts as seen."""
    ids = pairs.item_ids.tolist()
    n_users, n_items = pairs.shape
    item = model.item if isinstance(model, Blend) else model
    factors = model.factors if isinstance(model, Blend) else model
    if isinstance(factors, ItemModel):  # no factors: empty ones keep the artefact's shape
        factors = Factors(
            user=np.zeros((n_users, 0), dtype=np.float32),
            item=np.zeros((n_items, 0), dtype=np.float32),
            item_bias=np.zeros(n_items, dtype=np.float32),
        )
    assert isinstance(factors, Factors)
    return Artefact(
        user_ids=pairs.user_ids,
        item_ids=pairs.item_ids,
        user_factors=factors.user,
        item_factors=factors.item,
        item_bias=factors.item_bias,
        candidates=split.candidates,
        popularity=popularity(pairs),
        seen=pairs.matrix(),
        trained=fitted_on.matrix(),
        titles=[data.catalogue.titles.get(int(m), "") for m in ids],
        genres=[data.catalogue.genres.get(int(m), []) for m in ids],
        meta=meta,
        item_matrix=item.matrix if isinstance(item, ItemModel) else None,
        matrix_items=item.items if isinstance(item, ItemModel) else None,
        blend_weight=model.weight if isinstance(model, Blend) else None,
    )


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
    candidates: dict[str, Trained] = {}
    skipped: list[Skipped] = []
    trainers: dict[str, Callable[[], Trained | Skipped]] = {
        "popularity": lambda: train_popularity(split.train),
        "als": lambda: train_als(split.train, s.als, s.model.threads, k, validation),
        "lightfm": lambda: train_lightfm(split.train, features, s.model, k, validation),
        "rp3beta": lambda: train_item_model("rp3beta", split.train, s.rp3beta, k, validation),
        "ease": lambda: train_item_model("ease", split.train, s.ease, k, validation),
        # last: it blends the best of the others, already trained and scored on validation
        "blend": lambda: train_blend(candidates, validation, k)
        if s.blend
        else Skipped("blend", "disabled (blend false)"),
    }
    results: dict[str, Result] = {}
    for name in FAMILIES:
        trained = trainers[name]()
        if isinstance(trained, Skipped):
            skipped.append(trained)
            progress(f"{LABELS[name]}: skipped ({trained.reason})")
            continue
        candidates[name] = trained
        results[name] = evaluate(trained.model.scorer(), split, k, relevant=relevant)
        valid = validation_score(trained, validation, k)
        progress(
            f"{LABELS[name]} ({trained.seconds:.1f}s, {len(trained.tuning)} tuning trials): "
            f"ndcg@{k} {results[name].ndcg:.4f} on the test part, {valid:.4f} on validation"
        )
    order = {name: i for i, name in enumerate(FAMILIES)}
    chosen = max(candidates, key=lambda n: (candidates[n].validation_ndcg or 0.0, -order[n]))
    served, why = gate(chosen, results, k)
    progress(f"served: {why}")

    t0 = time.perf_counter()
    best = candidates[served]
    assert best.refit is not None
    fit_on = pairs if ev.refit else split.train
    model = best.refit(pairs) if ev.refit else best.model
    refit_seconds = time.perf_counter() - t0
    if ev.refit:
        progress(f"{LABELS[served]} refitted on all {len(pairs):,} pairs ({refit_seconds:.1f}s)")
    meta = {
        "trained_at": time.time(),
        "k": k,
        "family": served,
        "params": best.params,
        "fold_in": fold_in_params(served, candidates),
    }
    artefact = build_artefact(model, pairs, split, fit_on, data, meta)
    return Evaluation(
        pairs,
        split,
        relevant,
        candidates,
        results,
        skipped,
        chosen,
        served,
        why,
        artefact,
        len(fit_on),
        refit_seconds,
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
            "served": self.metrics["served"]["family"],
            "why": self.metrics["served"]["why"],
            # every candidate on the test part
            "candidates": {
                name: {m: c[m] for m in (f"ndcg@{k}", f"recall@{k}", f"precision@{k}")}
                for name, c in self.metrics["candidates"].items()
            },
            "skipped": self.metrics["skipped"],
            # the served model over tuned ALS (with its paired bootstrap 95% interval) and
            # over popularity, on the same held-out pairs
            "ratios": self.metrics["ratios"],
            "refit_train_pairs": self.metrics["served"]["refit_train_pairs"],
            "counts": self.counts,
            "seconds": round(self.seconds, 1),
        }


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
            "served": ev.served,
            **{name: t.params for name, t in ev.candidates.items()},
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
            comparison = compare_with_published(
                champion_version,
                champion,
                ev.model.model.scorer(),
                ev.pairs,
                ev.split,
                ev.relevant,
                k,
            )
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
