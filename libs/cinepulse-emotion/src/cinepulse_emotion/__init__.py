"""The one emotion + sentiment classifier for comment text (Spark job, pandas fallback, API).

Each comment gets one of :data:`EMOTIONS` (Ekman's six plus neutral), a sentiment score in
[-1, 1] and the seven class probabilities, from a model the project trains itself from
GoEmotions (no download at run time)::

    from cinepulse_emotion import classify_comments
    classify_comments(["What a ride, loved every minute!"])
    # [Emotion(emotion='joy', sentiment=0.93, scores={...}, version='tfidf-svm-v1+...')]

The artefact lives at ``~/.cache/cinepulse/models/emotion-<MODEL_VERSION>.joblib``
(``$CINEPULSE_EMOTION_MODEL`` overrides it); ``make setup`` trains it:
``python -m cinepulse_emotion train | evaluate | classify TEXT``. Without GoEmotions
it trains a *demo model* from the 2,000-comment sample the package ships
(:mod:`cinepulse_emotion.sample`): ``EmotionClassifier.is_demo`` and ``describe()``
say so, and its version carries ``+demo.``.
Its own package, ``cinepulse-emotion`` (scikit-learn and its stack pinned exactly: a joblib
artefact loads only under the scikit-learn that wrote it); ``cinepulse-common`` gives it the
cache and data set paths.
"""

from __future__ import annotations

import importlib.util

_missing = [
    m for m in ("numpy", "scipy", "sklearn", "joblib") if importlib.util.find_spec(m) is None
]
if _missing:
    raise ImportError(
        f"cinepulse_emotion needs {', '.join(_missing)}: "
        "install the package with its dependencies, cinepulse-emotion"
    )

from cinepulse_emotion.goemotions import EMOTIONS, DatasetError  # noqa: E402
from cinepulse_emotion.model import (  # noqa: E402
    MODEL_ENV,
    MODEL_VERSION,
    Emotion,
    EmotionClassifier,
    EmotionModelError,
    classify_comments,
    default_model_path,
)
from cinepulse_emotion.training import evaluate, train  # noqa: E402

__all__ = [
    "EMOTIONS",
    "MODEL_ENV",
    "MODEL_VERSION",
    "DatasetError",
    "Emotion",
    "EmotionClassifier",
    "EmotionModelError",
    "classify_comments",
    "default_model_path",
    "evaluate",
    "train",
]
