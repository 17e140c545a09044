"""The emotion classifier (cinepulse_emotion) on GoEmotions test, mapped to Ekman's six
plus neutral (multi-label), next to two baselines trained and measured in the same run:

* majority class: every comment gets the most frequent class of train;
* the named baseline: word TF-IDF + one-vs-rest logistic regression on train, per-class
  thresholds tuned on dev;
* Cinepulse: trained here from scratch exactly as ``make setup`` does (into a temporary
  folder, timed), then loaded from its artefact like any caller.

Quality: macro-F1 and per-class F1 on test (dev only tunes thresholds; dev macro-F1 is
shown for reference, optimistic since it tuned them). Speed: comments/s over the whole test
split, best of 3, on one core (the process pinned to one CPU, BLAS limited to one thread).
The local stack is not needed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from bench.report import Figure, Table, Target
from cinepulse_devstack import Stack
from cinepulse_emotion import EMOTIONS, EmotionClassifier, default_model_path, train
from cinepulse_emotion.goemotions import load_goemotions
from cinepulse_emotion.training import multilabel_f1, tune_thresholds

#: the local stack is not needed
STACK: list[str] = []
TARGET_F1 = 0.60
TARGET_RATE = 1_000.0
REPEATS = 3
CPU = 0


@contextmanager
def one_core(cpu: int = CPU) -> Iterator[None]:
    """The calling thread (and the threads it starts) on one CPU, BLAS/OpenMP on one thread."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        os.sched_setaffinity(0, before)


def best_rate(predict: Callable[[Sequence[str]], object], texts: Sequence[str]) -> float:
    """Comments/s of ``predict`` over ``texts``, best of :data:`REPEATS`, on one core."""
    seconds = []
    with one_core():
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            predict(texts)
            seconds.append(time.perf_counter() - t0)
    return len(texts) / min(seconds)


def _log(message: str) -> None:
    print(f"[bench.emotion] {message}", file=sys.stderr, flush=True)


def run(stack: Stack | None = None) -> Table:
    data = load_goemotions()
    train_split, dev, test = data.split("train"), data.split("dev"), data.split("test")
    y_train, y_dev, y_test = data.ekman(train_split), data.ekman(dev), data.ekman(test)
    #: (system, scores on dev, scores on test, comments/s, artefact bytes)
    rows: list[tuple[str, dict[str, Any], dict[str, Any], float | None, int | None]] = []

    # majority class: the most frequent class of train, for everyone
    majority = int(y_train.sum(axis=0).argmax())

    def constant(n: int) -> np.ndarray:
        pred = np.zeros((n, len(EMOTIONS)), dtype=np.int8)
        pred[:, majority] = 1
        return pred

    rows.append(
        (
            f"majority class ({EMOTIONS[majority]})",
            multilabel_f1(constant(len(dev)), y_dev),
            multilabel_f1(constant(len(test)), y_test),
            None,
            None,
        )
    )

    # the named baseline: word TF-IDF + one-vs-rest logistic regression, dev thresholds
    _log("baseline: word TF-IDF + one-vs-rest logistic regression")
    baseline = Pipeline(
        [
            ("tfidf", TfidfVectorizer()),
            ("lr", OneVsRestClassifier(LogisticRegression(max_iter=1000), n_jobs=-1)),
        ]
    ).fit(train_split.texts, y_train)
    baseline.named_steps["lr"].n_jobs = None
    thresholds = tune_thresholds(baseline.predict_proba(dev.texts), y_dev)

    def baseline_predict(texts: Sequence[str]) -> np.ndarray:
        return (baseline.predict_proba(texts) >= thresholds).astype(np.int8)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "baseline.joblib"
        joblib.dump({"pipeline": baseline, "thresholds": thresholds}, path)
        baseline_size = path.stat().st_size
    rows.append(
        (
            "TF-IDF (word) + one-vs-rest LR, dev thresholds",
            multilabel_f1(baseline_predict(dev.texts), y_dev),
            multilabel_f1(baseline_predict(test.texts), y_test),
            best_rate(baseline_predict, test.texts),
            baseline_size,
        )
    )

    # Cinepulse, trained from scratch as `make setup` does, then loaded from its artefact
    with tempfile.TemporaryDirectory() as tmp:
        _log("Cinepulse classifier: training")
        t0 = time.monotonic()
        metadata = train(out=Path(tmp) / "emotion.joblib", n_jobs=-1, progress=_log)
        train_seconds = time.monotonic() - t0
        classifier = EmotionClassifier.load(Path(metadata["artefact"]))
        size = metadata["artefact_bytes"]
    cinepulse_test = multilabel_f1(classifier.predict_multi_hot(test.texts), y_test)
    rate = best_rate(classifier.classify, test.texts)
    rows.append(
        (
            f"Cinepulse {classifier.version}",
            multilabel_f1(classifier.predict_multi_hot(dev.texts), y_dev),
            cinepulse_test,
            rate,
            size,
        )
    )

    table = Table(
        f"Emotion classifier on GoEmotions test ({len(test):,} comments, Ekman's six + "
        "neutral, multi-label)",
        "system",
    )
    added = []
    for i, (name, on_dev, on_test, speed, artefact) in enumerate(rows):
        ours = i == len(rows) - 1  # Cinepulse; the rows before it are the baselines
        figures = {
            "test macro-F1": Figure(
                on_test["macro_f1"],
                better="higher",
                fmt=".4f",
                target=Target(">=", TARGET_F1) if ours else None,
            ),
            **{e: Figure(on_test["per_class_f1"][e], fmt=".3f") for e in EMOTIONS},
            "comments/s (1 core)": Figure(
                speed,
                "comments/s",
                better="higher",
                target=Target(">=", TARGET_RATE) if ours else None,
            ),
            "artefact": Figure(None if artefact is None else artefact / 2**20, "MiB", fmt=".1f"),
            "dev macro-F1": Figure(on_dev["macro_f1"], fmt=".4f"),
        }
        short = ["majority class", "TF-IDF + LR", "Cinepulse"][i]
        added.append(table.add(name, figures, baseline=not ours, short=short))
    majority_row, baseline_row, cinepulse_row = added
    cinepulse_row.compare("test macro-F1", baseline_row, headline=True)
    cinepulse_row.compare("test macro-F1", majority_row)
    cinepulse_row.compare("comments/s (1 core)", baseline_row)

    table.notes.append(
        f"train {len(train_split):,} comments, dev {len(dev):,} (per-class thresholds of both "
        f"trained systems; its macro-F1 is optimistic), test {len(test):,} (scored only)"
    )
    table.notes.append(
        f"Cinepulse training (features, fit, thresholds, scores, artefact) took "
        f"{train_seconds:.0f}s on {os.cpu_count()} cores; cached artefact at "
        f"{default_model_path()}: {_cached_version(classifier.version)}"
    )
    table.notes.append(
        f"comments/s: classify() (baseline: predict_proba + thresholds) over all {len(test):,} "
        f"test comments in one call, best of {REPEATS}, pinned to CPU {CPU}, BLAS on one "
        "thread; other processes (the local stack) were not stopped"
    )
    return table


def _cached_version(fresh: str) -> str:
    try:
        cached = EmotionClassifier.load()
    except Exception as exc:  # a missing or stale cache is worth a note, not a failure
        return f"not usable ({exc})"
    same = "same version as this run" if cached.version == fresh else "a different version"
    return f"{cached.version}, {same}"


if __name__ == "__main__":
    print(run().markdown())
