"""Training and evaluating the classifier of :mod:`cinepulse_emotion.model` (the recipe
is in its docstring): the scikit-learn pipeline, the dev-tuned thresholds, the F1 scores, and
the artefact written (``python -m cinepulse_emotion train | evaluate``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from cinepulse_emotion.goemotions import EMOTIONS, DatasetError
from cinepulse_emotion.model import (
    ARTEFACT_FORMAT,
    MIN_EXAMPLES,
    MODEL_VERSION,
    TARGETS,
    THRESHOLD_GRID,
    CalibratedLinearHead,
    EmotionClassifier,
    FloatArray,
    IntArray,
    default_model_path,
)
from cinepulse_emotion.sample import training_data


def build_pipeline(n_jobs: int | None = None) -> Pipeline:
    features = FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=3
                ),
            ),
        ]
    )
    svm = LinearSVC(C=0.1, random_state=0)
    classifier = OneVsRestClassifier(
        CalibratedClassifierCV(svm, cv=3, method="isotonic"), n_jobs=n_jobs
    )
    return Pipeline([("features", features), ("classifier", classifier)])


def tune_thresholds(p: FloatArray, y: IntArray) -> FloatArray:
    """Per column, the threshold on :data:`THRESHOLD_GRID` with the best F1 of ``p >= t``
    against ``y`` (the lowest on a tie; 0.5 for a class without positives)."""
    thresholds = np.full(p.shape[1], 0.5)
    for j in range(p.shape[1]):
        gold = y[:, j].astype(bool)
        if not gold.any():
            continue
        pred = p[:, j, None] >= THRESHOLD_GRID[None, :]
        tp = (pred & gold[:, None]).sum(axis=0)
        f1 = 2 * tp / (pred.sum(axis=0) + gold.sum())
        thresholds[j] = THRESHOLD_GRID[int(f1.argmax())]
    return thresholds


def multilabel_f1(pred: IntArray, gold: IntArray) -> dict[str, Any]:
    """Macro-F1 over the seven classes and each class's F1 (0 where a class is never
    predicted nor present, as scikit-learn's ``zero_division=0``)."""
    tp = (pred & gold).sum(axis=0)
    denominator = pred.sum(axis=0) + gold.sum(axis=0)
    f1 = np.divide(2 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)
    return {
        "macro_f1": round(float(f1.mean()), 4),
        "per_class_f1": {e: round(float(v), 4) for e, v in zip(EMOTIONS, f1, strict=True)},
    }


def sentiment_f1(p: FloatArray, positive: IntArray, negative: IntArray) -> float:
    """3-way macro-F1 of the sentiment score's sign (|score| < 0.25: neutral) against the
    gold grouping (only positive labels: +1, only negative: -1, else 0). Informational."""
    score = p[:, -2] - p[:, -1]
    pred = np.where(score >= 0.25, 1, np.where(score <= -0.25, -1, 0))
    gold = positive.astype(int) - negative.astype(int)
    f1s = []
    for c in (-1, 0, 1):
        tp = int(((pred == c) & (gold == c)).sum())
        denominator = int((pred == c).sum() + (gold == c).sum())
        f1s.append(2 * tp / denominator if denominator else 0.0)
    return round(float(np.mean(f1s)), 4)


def _quiet(message: str) -> None:
    pass


def train(
    data_dir: Path | None = None,
    out: Path | None = None,
    *,
    n_jobs: int | None = None,
    progress: Callable[[str], None] = _quiet,
) -> dict[str, Any]:
    """Train on GoEmotions train, tune the thresholds on dev, score dev and test, write the
    artefact to ``out`` (default :func:`default_model_path`) and return its metadata.

    ``data_dir`` None: GoEmotions where ``cinepulse-data where`` finds it, else the shipped
    sample, which makes a demo model (:func:`~cinepulse_emotion.sample.training_data`;
    the metadata's ``demo`` and ``trained_on`` say which, the version carries ``+demo.``).
    Test is scored once, after everything is chosen, and used for nothing else.
    """
    t0 = time.monotonic()
    source = training_data(data_dir)
    data = source.data
    out = default_model_path() if out is None else Path(out)
    train_split, dev, test = data.split("train"), data.split("dev"), data.split("test")
    progress(
        f"{source.trained_on} at {data.root}: train {len(train_split):,}, dev {len(dev):,}, "
        f"test {len(test):,} comments"
    )
    y_train = np.hstack([data.ekman(train_split), data.sentiment(train_split)])
    for target, positives in zip(TARGETS, y_train.sum(axis=0).tolist(), strict=True):
        if not MIN_EXAMPLES <= positives <= len(y_train) - MIN_EXAMPLES:
            raise DatasetError(
                f"{data.root / 'train.tsv'}: {positives} of {len(y_train)} comments are "
                f"{target}; each target needs at least {MIN_EXAMPLES} with and without it"
            )
    pipeline = build_pipeline(n_jobs)
    progress(f"fitting {MODEL_VERSION} (TF-IDF word 1-2 + char_wb 2-5, calibrated LinearSVC)")
    pipeline.fit(train_split.texts, y_train)
    features: FeatureUnion = pipeline.named_steps["features"]
    fitted: OneVsRestClassifier = pipeline.named_steps["classifier"]
    head = CalibratedLinearHead.from_sklearn(fitted)
    x_dev = features.transform(dev.texts)
    drift = float(np.abs(head.predict_proba(x_dev) - fitted.predict_proba(x_dev)).max())
    if drift > 1e-9:  # a scikit-learn upgrade changed what calibration computes
        raise RuntimeError(f"CalibratedLinearHead differs from scikit-learn by {drift:.2e}")
    n_features = int(head.weights.shape[0])
    fit_seconds = time.monotonic() - t0

    version = f"{MODEL_VERSION}+{'demo.' if source.demo else ''}{data.training_sha256[:8]}"
    p_dev = head.predict_proba(x_dev)
    thresholds = tune_thresholds(p_dev[:, : len(EMOTIONS)], data.ekman(dev))
    classifier = EmotionClassifier(features, head, thresholds.tolist(), version)
    p_test = classifier.probabilities(test.texts)
    scores: dict[str, Any] = {}
    for split, p in (("dev", p_dev), ("test", p_test)):
        s = dev if split == "dev" else test
        pred = (p[:, : len(EMOTIONS)] >= thresholds).astype(np.int8)
        sentiment = data.sentiment(s)
        scores[split] = {
            "comments": len(s),
            **multilabel_f1(pred, data.ekman(s)),
            "sentiment_macro_f1": sentiment_f1(p, sentiment[:, 0], sentiment[:, 1]),
        }
        progress(
            f"{split}: macro-F1 {scores[split]['macro_f1']:.4f}  "
            + "  ".join(f"{e} {v:.3f}" for e, v in scores[split]["per_class_f1"].items())
        )

    metadata: dict[str, Any] = {
        "version": version,
        "model_version": MODEL_VERSION,
        "training_data_sha256": data.training_sha256,
        "data_dir": str(data.root),
        "trained_on": source.trained_on,
        "demo": source.demo,
        "thresholds": classifier.thresholds,
        "dev": scores["dev"],
        "test": scores["test"],
        "train_comments": len(train_split),
        "features": n_features,
        "fit_seconds": round(fit_seconds, 1),
        "sklearn": sklearn.__version__,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    artefact = {
        "format": ARTEFACT_FORMAT,
        "version": version,
        "sklearn": sklearn.__version__,
        "features": features,
        "head": head.to_arrays(),
        "thresholds": thresholds.tolist(),
        "metadata": metadata,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        joblib.dump(artefact, partial)
        partial.replace(out)  # atomic: a reader never sees half a model
    finally:
        partial.unlink(missing_ok=True)
    metadata["artefact"] = str(out)
    metadata["artefact_bytes"] = out.stat().st_size
    metadata["train_seconds"] = round(time.monotonic() - t0, 1)
    progress(
        f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB) in {metadata['train_seconds']:.0f}s"
    )
    return metadata


def evaluate(
    classifier: EmotionClassifier | None = None,
    data_dir: Path | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """Multi-label macro-F1 and per-class F1 of ``classifier`` (default: the default model)
    on a GoEmotions split mapped to Ekman's six plus neutral (``data_dir`` None: GoEmotions,
    else the shipped sample's split, as :func:`train` chooses)."""
    classifier = EmotionClassifier.load() if classifier is None else classifier
    source = training_data(data_dir)
    data = source.data
    s = data.split(split)
    pred = classifier.predict_multi_hot(s.texts)
    return {
        "version": classifier.version,
        "data": source.trained_on.removesuffix(" (demo model)"),
        "split": split,
        "comments": len(s),
        **multilabel_f1(pred, data.ekman(s)),
    }
