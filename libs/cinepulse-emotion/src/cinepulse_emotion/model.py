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

The artefact is trained here from the data set (``python -m cinepulse_emotion train``,
run by ``make setup``), never downloaded. It is a joblib pickle: load only artefacts this
project wrote (joblib.load runs code from the file).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
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
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion

from cinepulse_common.paths import default_cache
from cinepulse_emotion.goemotions import EMOTIONS

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

    @property
    def is_demo(self) -> bool:
        """Trained from the shipped sample, not from GoEmotions (see :mod:`.sample`)."""
        return bool(self.metadata.get("demo"))

    def describe(self) -> str:
        """One line: the version, what it was trained on, its macro-F1 on held-out comments."""
        test = self.metadata.get("test") or {}
        scored = (
            f", macro-F1 {test['macro_f1']:.4f} on {test.get('comments', '?'):,} held-out comments"
            if "macro_f1" in test
            else ""
        )
        if self.is_demo:
            return f"{self._version} (demo model: trained on the shipped sample{scored})"
        return f"{self._version} (trained on GoEmotions{scored})"

    @classmethod
    def load(cls, path: Path | None = None) -> EmotionClassifier:
        path = default_model_path() if path is None else Path(path)
        if not path.is_file():
            raise EmotionModelError(
                f"emotion model not found at {path}; run `make setup` or "
                "`python -m cinepulse_emotion train`"
            )
        try:
            with warnings.catch_warnings():
                # the version check below says it better
                warnings.simplefilter("ignore", InconsistentVersionWarning)
                artefact = joblib.load(path)
        except Exception as exc:
            raise EmotionModelError(
                f"cannot read the emotion model at {path} ({type(exc).__name__}: {exc}); "
                "retrain it: `python -m cinepulse_emotion train --force`"
            ) from exc
        if not isinstance(artefact, dict) or artefact.get("format") != ARTEFACT_FORMAT:
            raise EmotionModelError(
                f"{path} is not a format-{ARTEFACT_FORMAT} emotion model; retrain it: "
                "`python -m cinepulse_emotion train --force`"
            )
        if artefact.get("sklearn") != sklearn.__version__:
            raise EmotionModelError(
                f"the emotion model at {path} was written by scikit-learn "
                f"{artefact.get('sklearn')}, this is {sklearn.__version__}; retrain it: "
                "`python -m cinepulse_emotion train --force`"
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
                "it: `python -m cinepulse_emotion train --force`"
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
