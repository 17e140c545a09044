"""The classifier: TF-IDF features, one calibrated linear model per target, dev-tuned thresholds.

Recipe (chosen on GoEmotions dev, never on test; see ``bench/emotion.py`` for the figures):

* features: word 1-2-gram and ``char_wb`` 2-5-gram TF-IDF, sublinear tf (the character
  n-grams carry misspellings, emphasis like "sooo" and emoji);
* nine targets: the seven :data:`EMOTIONS` (multi-label, GoEmotions mapped to Ekman) and the
  two sentiment groups (has a positive label, has a negative label);
* per target a ``LinearSVC`` (C=0.1) with isotonic calibration over 3 folds, so every
  target has a probability. Against the named baseline (word TF-IDF + logistic regression,
  dev macro-F1 0.56) the character n-grams gave most of the gain (0.60 still with logistic
  regression), the calibrated SVM the rest (0.61); training on the 28 fine-grained labels and aggregating (max, noisy-or),
  ensembles with logistic regression and stacking did not beat it on dev;
* per Ekman class a probability threshold maximising that class's F1 on dev.

At run time the fitted scikit-learn classifiers are replaced by their arithmetic
(:class:`CalibratedLinearHead`: one sparse product, then the isotonic maps), the same
probabilities without scikit-learn's per-estimator input checks, which cost ~20 ms a call.

The artefact is trained here from the data set (``python -m cinepulse_common.emotion train``,
run by ``make setup``), never downloaded. It is a joblib pickle: load only artefacts this
project wrote (joblib.load runs code from the file).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import sklearn
from pydantic_settings import BaseSettings, SettingsConfigDict
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from cinepulse_common.emotion.goemotions import EMOTIONS, DatasetError, load_goemotions
from cinepulse_common.paths import default_cache

#: the recipe; bump it when the features, the model or the decision rule change
MODEL_VERSION = "tfidf-svm-v1"
MODEL_ENV = "CINEPULSE_EMOTION_MODEL"
ARTEFACT_FORMAT = 1

#: what the model predicts, in its output columns: the Ekman classes, then sentiment
TARGETS = (*EMOTIONS, "positive", "negative")
NEUTRAL = EMOTIONS.index("neutral")
THRESHOLD_GRID = np.round(np.arange(1, 100) / 100, 2)
#: texts per transform call: bounds the sparse matrix of a large batch (a Spark partition)
CHUNK = 2048
#: comments a target needs in train, with and without it (3-fold calibration)
MIN_EXAMPLES = 3

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int8]


class EmotionSettings(BaseSettings):
    """``CINEPULSE_EMOTION_MODEL``: the artefact to load instead of the default path."""

    model_config = SettingsConfigDict(
        env_prefix="CINEPULSE_EMOTION_", extra="ignore", frozen=True, env_ignore_empty=True
    )

    model: Path | None = None


class EmotionModelError(RuntimeError):
    """The emotion model artefact is missing, unreadable or from another library version."""


def default_model_path() -> Path:
    """``$CINEPULSE_EMOTION_MODEL``, else ``~/.cache/cinepulse/models/emotion-<MODEL_VERSION>.joblib``."""
    configured = EmotionSettings().model
    if configured is not None:
        return configured
    return default_cache() / "models" / f"emotion-{MODEL_VERSION}.joblib"


@dataclass(frozen=True, slots=True)
class Emotion:
    """What one comment gets.

    ``emotion``: the most confident class among those passing their threshold (confidence
    relative to the threshold, probability / threshold), ``neutral`` when none passes.
    ``sentiment``: p(positive) - p(negative) in [-1, 1]. ``scores``: each of the seven
    classes' probability (4 decimals). ``version``: the artefact that said so.
    """

    emotion: str
    sentiment: float
    scores: dict[str, float]
    version: str


class EmotionClassifier:
    """A trained artefact, loaded. Read-only after loading, so threads may share one."""

    def __init__(
        self,
        features: FeatureUnion,
        head: CalibratedLinearHead,
        thresholds: Sequence[float],
        version: str,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if len(thresholds) != len(EMOTIONS) or head.targets != len(TARGETS):
            raise ValueError(
                f"expected {len(EMOTIONS)} thresholds and {len(TARGETS)} targets, "
                f"got {len(thresholds)} and {head.targets}"
            )
        self.features = features
        self.head = head
        self._thresholds = np.asarray(thresholds, dtype=np.float64)
        self._version = version
        self.metadata: dict[str, Any] = metadata or {}

    @property
    def version(self) -> str:
        return self._version

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(zip(EMOTIONS, self._thresholds.tolist(), strict=True))

    @classmethod
    def load(cls, path: Path | None = None) -> EmotionClassifier:
        path = default_model_path() if path is None else Path(path)
        if not path.is_file():
            raise EmotionModelError(
                f"emotion model not found at {path}; run `make setup` or "
                "`python -m cinepulse_common.emotion train`"
            )
        try:
            with warnings.catch_warnings():
                # the version check below says it better
                warnings.simplefilter("ignore", InconsistentVersionWarning)
                artefact = joblib.load(path)
        except Exception as exc:
            raise EmotionModelError(
                f"cannot read the emotion model at {path} ({type(exc).__name__}: {exc}); "
                "retrain it: `python -m cinepulse_common.emotion train --force`"
            ) from exc
        if not isinstance(artefact, dict) or artefact.get("format") != ARTEFACT_FORMAT:
            raise EmotionModelError(
                f"{path} is not a format-{ARTEFACT_FORMAT} emotion model; retrain it: "
                "`python -m cinepulse_common.emotion train --force`"
            )
        if artefact.get("sklearn") != sklearn.__version__:
            raise EmotionModelError(
                f"the emotion model at {path} was written by scikit-learn "
                f"{artefact.get('sklearn')}, this is {sklearn.__version__}; retrain it: "
                "`python -m cinepulse_common.emotion train --force`"
            )
        try:
            return cls(
                artefact["features"],
                CalibratedLinearHead.from_arrays(artefact["head"]),
                artefact["thresholds"],
                artefact["version"],
                artefact["metadata"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EmotionModelError(
                f"{path} is not a usable emotion model ({type(exc).__name__}: {exc}); retrain "
                "it: `python -m cinepulse_common.emotion train --force`"
            ) from exc

    def probabilities(self, texts: Sequence[str]) -> FloatArray:
        """``(n, 9)``: the probability of each of :data:`TARGETS` for each text."""
        cleaned = [t if isinstance(t, str) else "" for t in texts]  # None/NaN from a DataFrame
        if not cleaned:
            return np.zeros((0, len(TARGETS)))
        parts = [
            self.head.predict_proba(self.features.transform(cleaned[i : i + CHUNK]))
            for i in range(0, len(cleaned), CHUNK)
        ]
        return np.vstack(parts)

    def classify(self, texts: Sequence[str]) -> list[Emotion]:
        """One :class:`Emotion` per text, in order. Deterministic, and independent of what
        else is in the batch."""
        p = self.probabilities(texts)
        if not len(p):
            return []
        ekman = np.round(p[:, : len(EMOTIONS)], 4)
        labels = decide(p[:, : len(EMOTIONS)], self._thresholds)
        sentiment = np.clip(np.round(p[:, -2] - p[:, -1], 4), -1.0, 1.0)
        return [
            Emotion(
                emotion=EMOTIONS[label],
                sentiment=float(s),
                scores=dict(zip(EMOTIONS, row, strict=True)),
                version=self._version,
            )
            for label, s, row in zip(
                labels.tolist(), sentiment.tolist(), ekman.tolist(), strict=True
            )
        ]

    def predict_multi_hot(self, texts: Sequence[str]) -> IntArray:
        """``(n, 7)``: 1 where a class passes its threshold (none may: the multi-label view)."""
        p = self.probabilities(texts)[:, : len(EMOTIONS)]
        return (p >= self._thresholds).astype(np.int8)

    def predict_labels(self, texts: Sequence[str]) -> list[frozenset[str]]:
        """The multi-label prediction per text (what the macro-F1 is measured on); may be empty."""
        return [
            frozenset(e for e, hit in zip(EMOTIONS, row, strict=True) if hit)
            for row in self.predict_multi_hot(texts).tolist()
        ]


class CalibratedLinearHead:
    """The fitted one-vs-rest calibrated linear models as arithmetic: per target, ``folds``
    linear scores ``X @ w + b`` each mapped through its isotonic calibration (linear
    interpolation between knots, clipped at the ends), averaged. This is what
    ``OneVsRestClassifier(CalibratedClassifierCV(LinearSVC, method="isotonic"))`` computes
    (``train`` checks it on dev), stored as plain arrays."""

    def __init__(
        self,
        weights: FloatArray,
        bias: FloatArray,
        knots_x: FloatArray,
        knots_y: FloatArray,
        offsets: npt.NDArray[np.int64],
        folds: int,
    ) -> None:
        self.weights = weights  # (features, targets * folds), target-major
        self.bias = bias
        self.knots_x, self.knots_y, self.offsets = knots_x, knots_y, offsets
        self.folds = folds
        self.targets = weights.shape[1] // folds

    @classmethod
    def from_sklearn(cls, ovr: OneVsRestClassifier) -> CalibratedLinearHead:
        columns, bias, xs, ys = [], [], [], []
        if any(not isinstance(cal, CalibratedClassifierCV) for cal in ovr.estimators_):
            raise ValueError("a target had a single class in training; cannot calibrate it")
        folds = {len(cal.calibrated_classifiers_) for cal in ovr.estimators_}
        if len(folds) != 1:
            raise ValueError(f"targets calibrated over different numbers of folds: {folds}")
        for cal in ovr.estimators_:
            for fold in cal.calibrated_classifiers_:
                (isotonic,) = fold.calibrators
                columns.append(np.asarray(fold.estimator.coef_, dtype=np.float64).ravel())
                bias.append(float(np.ravel(fold.estimator.intercept_)[0]))
                xs.append(np.asarray(isotonic.X_thresholds_, dtype=np.float64))
                ys.append(np.asarray(isotonic.y_thresholds_, dtype=np.float64))
        offsets = np.cumsum([0, *map(len, xs)]).astype(np.int64)
        return cls(
            np.ascontiguousarray(np.column_stack(columns)),
            np.asarray(bias),
            np.concatenate(xs),
            np.concatenate(ys),
            offsets,
            folds.pop(),
        )

    def to_arrays(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "bias": self.bias,
            "knots_x": self.knots_x,
            "knots_y": self.knots_y,
            "offsets": self.offsets,
            "folds": self.folds,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> CalibratedLinearHead:
        return cls(**arrays)

    def predict_proba(self, x: sp.spmatrix | sp.sparray) -> FloatArray:
        """``(n, targets)`` probabilities of the rows of the feature matrix ``x``."""
        scores = np.asarray(x @ self.weights) + self.bias
        p = np.empty_like(scores)
        for j in range(scores.shape[1]):
            lo, hi = self.offsets[j], self.offsets[j + 1]
            p[:, j] = np.interp(scores[:, j], self.knots_x[lo:hi], self.knots_y[lo:hi])
        return np.minimum(p.reshape(len(p), self.targets, self.folds).mean(axis=2), 1.0)


def decide(p: FloatArray, thresholds: FloatArray) -> npt.NDArray[np.intp]:
    """Column of :data:`EMOTIONS` per row: among the classes with ``p >= threshold`` the one
    with the highest ``p / threshold``; neutral when none passes."""
    passing = p >= thresholds
    ratio = np.where(passing, p / thresholds, -np.inf)
    return np.where(passing.any(axis=1), ratio.argmax(axis=1), NEUTRAL)


# --------------------------------------------------------------------------------------------
# The process-wide default (what Spark's UDF and the pandas fallback call)

_default: EmotionClassifier | None = None
_default_lock = threading.Lock()


def default_classifier() -> EmotionClassifier:
    """The classifier at :func:`default_model_path`, loaded once per process."""
    global _default
    classifier = _default
    if classifier is None:
        with _default_lock:
            if _default is None:
                _default = EmotionClassifier.load()
            classifier = _default
    return classifier


def classify_comments(texts: Sequence[str]) -> list[Emotion]:
    """The emotion and sentiment of each comment text, by the process-wide default model
    (loaded on first use; an empty batch loads nothing)."""
    if not len(texts):
        return []
    return default_classifier().classify(texts)


# --------------------------------------------------------------------------------------------
# Training and evaluation


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

    Test is scored once, after everything is chosen, and used for nothing else.
    """
    t0 = time.monotonic()
    data = load_goemotions(data_dir)
    out = default_model_path() if out is None else Path(out)
    train_split, dev, test = data.split("train"), data.split("dev"), data.split("test")
    progress(
        f"GoEmotions at {data.root}: train {len(train_split):,}, dev {len(dev):,}, "
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

    version = f"{MODEL_VERSION}+{data.training_sha256[:8]}"
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
    on a GoEmotions split mapped to Ekman's six plus neutral."""
    classifier = EmotionClassifier.load() if classifier is None else classifier
    data = load_goemotions(data_dir)
    s = data.split(split)
    pred = classifier.predict_multi_hot(s.texts)
    return {
        "version": classifier.version,
        "split": split,
        "comments": len(s),
        **multilabel_f1(pred, data.ekman(s)),
    }
