"""The one emotion + sentiment classifier for comment text (Spark job, pandas fallback, API).

Each comment gets one of :data:`EMOTIONS` (Ekman's six plus neutral), a sentiment score in
[-1, 1] and the seven class probabilities, from a model the project trains itself from
GoEmotions (no download at run time)::

    from cinepulse_common.emotion import classify_comments
    classify_comments(["What a ride, loved every minute!"])
    # [Emotion(emotion='joy', sentiment=0.93, scores={...}, version='tfidf-svm-v1+...')]

The artefact lives at ``~/.cache/cinepulse/models/emotion-<MODEL_VERSION>.joblib``
(``$CINEPULSE_EMOTION_MODEL`` overrides it); ``make setup`` trains it:
``python -m cinepulse_common.emotion train | evaluate | classify TEXT``. Without GoEmotions
it trains a *demo model* from the 2,000-comment sample the package ships
(:mod:`cinepulse_common.emotion.sample`): ``EmotionClassifier.is_demo`` and ``describe()``
say so, and its version carries ``+demo.``.
Needs the ``emotion`` extra: ``cinepulse-common[emotion]``.
"""

from __future__ import annotations

import importlib.util

_missing = [
    m for m in ("numpy", "scipy", "sklearn", "joblib") if importlib.util.find_spec(m) is None
]
if _missing:
    raise ImportError(
        f"cinepulse_common.emotion needs {', '.join(_missing)}: "
        "install the extra, cinepulse-common[emotion]"
    )

from cinepulse_common.emotion.goemotions import EMOTIONS, DatasetError  # noqa: E402
from cinepulse_common.emotion.model import (  # noqa: E402
    MODEL_ENV,
    MODEL_VERSION,
    Emotion,
    EmotionClassifier,
    EmotionModelError,
    classify_comments,
    default_model_path,
)
from cinepulse_common.emotion.training import evaluate, train  # noqa: E402

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
