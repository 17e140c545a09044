"""The emotion + sentiment classifier (cinepulse_emotion).

Most tests train a tiny model into a temporary folder from a few hundred GoEmotions lines
(cut from the sample the package ships: no data set needed), so they do not depend on the
cached artefact. The ``real`` ones need GoEmotions and use the artefact that ``make setup``
trains from it (they are skipped, saying so, when it is missing or a demo model): its
quality on the test split is a regression guard.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import f1_score

from cinepulse_emotion import (
    EMOTIONS,
    MODEL_ENV,
    MODEL_VERSION,
    EmotionClassifier,
    EmotionModelError,
    classify_comments,
    default_model_path,
    evaluate,
    train,
)
from cinepulse_emotion import model as emotion_model
from cinepulse_emotion import training as emotion_training
from cinepulse_emotion.__main__ import main
from cinepulse_emotion.goemotions import DatasetError
from tests.datasets import require
from tests.factories import goemotions_sample

JOYFUL = "I absolutely loved this movie, it made me so happy!"
ANGRY = "This movie made me furious, what an infuriating waste of my time."
TEXTS = [
    JOYFUL,
    ANGRY,
    "I was terrified the whole time, the monster still scares me.",
    "WOW. Did not see that twist coming?!",
    "",
    "   ",
    "🎬🍿😂😂",
    "[NAME] is a national treasure",
    "so sad when the dog died 😢 " * 300,
]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return goemotions_sample(tmp_path_factory.mktemp("goemotions"))


@pytest.fixture(scope="module")
def tiny_trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return train(tiny_data, tmp_path_factory.mktemp("models") / "tiny.joblib", n_jobs=1)


@pytest.fixture(scope="module")
def tiny_model(tiny_trained: dict[str, Any]) -> Path:
    return Path(tiny_trained["artefact"])


@pytest.fixture(scope="module")
def tiny(tiny_model: Path) -> EmotionClassifier:
    return EmotionClassifier.load(tiny_model)


@pytest.fixture(scope="module")
def real() -> EmotionClassifier:
    require("goemotions")
    try:
        model = EmotionClassifier.load()
    except EmotionModelError as exc:
        pytest.skip(f"no trained emotion model ({exc})")
    if model.is_demo:
        pytest.skip(
            f"the model at {default_model_path()} is a demo model (trained on the shipped "
            "sample): `python -m cinepulse_emotion train` replaces it from GoEmotions"
        )
    return model


# --- what a comment gets -------------------------------------------------------------------


def test_every_comment_gets_a_label_seven_scores_and_a_bounded_sentiment(
    tiny: EmotionClassifier,
) -> None:
    results = tiny.classify(TEXTS)
    assert len(results) == len(TEXTS)
    for r in results:
        assert r.emotion in EMOTIONS
        assert list(r.scores) == list(EMOTIONS)
        assert all(0.0 <= v <= 1.0 and round(v, 4) == v for v in r.scores.values())
        assert -1.0 <= r.sentiment <= 1.0
        assert round(r.sentiment, 4) == r.sentiment
        assert r.version == tiny.version


def test_classify_is_deterministic_and_independent_of_the_batch(
    tiny: EmotionClassifier, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = tiny.classify(TEXTS)
    assert tiny.classify(TEXTS) == batch
    assert [tiny.classify([t])[0] for t in TEXTS] == batch
    assert EmotionClassifier.load(tiny_model).classify(TEXTS[::-1])[::-1] == batch
    monkeypatch.setattr(emotion_model, "CHUNK", 2)  # a batch bigger than one transform call
    assert tiny.classify(TEXTS) == batch


def test_empty_input_is_an_empty_list(
    tiny: EmotionClassifier, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert tiny.classify([]) == []
    assert tiny.predict_labels([]) == []
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "absent.joblib"))
    monkeypatch.setattr(emotion_model, "_default", None)
    assert classify_comments([]) == []  # an empty Spark partition loads nothing


def test_missing_text_is_read_as_empty_text(tiny: EmotionClassifier) -> None:
    none, nan, empty = tiny.classify([None, float("nan"), ""])
    assert none == nan == empty


def test_the_label_is_a_passing_class_else_neutral(tiny: EmotionClassifier) -> None:
    for r, labels in zip(tiny.classify(TEXTS), tiny.predict_labels(TEXTS), strict=True):
        assert labels <= set(EMOTIONS)
        assert r.emotion in labels if labels else r.emotion == "neutral"


def test_decide_takes_the_class_most_above_its_threshold() -> None:
    thresholds = np.array([0.2, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5])
    p = np.array(
        [
            [0.3, 0.18, 0.0, 0.0, 0.0, 0.0, 0.0],  # anger 1.5x, disgust 1.8x its threshold
            [0.1, 0.05, 0.4, 0.45, 0.0, 0.0, 0.3],  # nothing passes
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9],  # neutral itself
        ]
    )
    labels = emotion_model.decide(p, thresholds)
    assert [EMOTIONS[i] for i in labels] == ["disgust", "neutral", "neutral"]


def test_thresholds_maximise_f1_on_the_tuning_split() -> None:
    p = np.array([[0.9, 0.2], [0.8, 0.1], [0.3, 0.4], [0.1, 0.3]])
    y = np.array([[1, 0], [1, 0], [0, 0], [0, 0]], dtype=np.int8)
    # column 0: any threshold in (0.3, 0.8] is perfect, the lowest wins; column 1: no positives
    assert emotion_training.tune_thresholds(p, y).tolist() == [0.31, 0.5]


def test_multilabel_f1_agrees_with_scikit_learn() -> None:
    rng = np.random.default_rng(7)
    pred = (rng.random((500, 7)) < 0.3).astype(np.int8)
    gold = (rng.random((500, 7)) < 0.2).astype(np.int8)
    gold[:, 2] = 0  # a class never present
    pred[:, 2] = 0  # and never predicted
    ours = emotion_training.multilabel_f1(pred, gold)
    assert ours["macro_f1"] == round(f1_score(gold, pred, average="macro", zero_division=0), 4)
    expected = f1_score(gold, pred, average=None, zero_division=0)
    assert list(ours["per_class_f1"].values()) == [round(float(v), 4) for v in expected]


# --- the artefact ----------------------------------------------------------------------------


def test_training_reports_thresholds_and_scores(tiny_trained: dict[str, Any]) -> None:
    assert tiny_trained["version"].startswith(f"{MODEL_VERSION}+")
    assert len(tiny_trained["version"]) == len(MODEL_VERSION) + 1 + 8
    assert list(tiny_trained["thresholds"]) == list(EMOTIONS)
    for split in ("dev", "test"):
        assert 0.0 <= tiny_trained[split]["macro_f1"] <= 1.0
        assert list(tiny_trained[split]["per_class_f1"]) == list(EMOTIONS)


def test_loaded_classifier_carries_what_training_reported(
    tiny: EmotionClassifier, tiny_trained: dict[str, Any], tiny_data: Path
) -> None:
    assert tiny.version == tiny_trained["version"]
    assert tiny.thresholds == tiny_trained["thresholds"]
    scored = evaluate(tiny, tiny_data, split="test")
    assert scored["macro_f1"] == tiny_trained["test"]["macro_f1"]


def test_missing_artefact_says_how_to_make_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "emotion.joblib"
    with pytest.raises(EmotionModelError) as err:
        EmotionClassifier.load(path)
    message = str(err.value)
    assert f"emotion model not found at {path}" in message
    assert "make setup" in message
    assert "python -m cinepulse_emotion train" in message


def test_unreadable_artefact_says_to_retrain(tmp_path: Path) -> None:
    path = tmp_path / "broken.joblib"
    path.write_bytes(b"not a model")
    with pytest.raises(EmotionModelError, match="train --force"):
        EmotionClassifier.load(path)


def test_model_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_ENV, "/models/emotion.joblib")
    assert default_model_path() == Path("/models/emotion.joblib")
    monkeypatch.delenv(MODEL_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", "/cache")
    assert default_model_path() == Path(f"/cache/cinepulse/models/emotion-{MODEL_VERSION}.joblib")


def test_train_refuses_a_split_missing_a_class(tiny_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "goemotions"
    data.mkdir()
    for f in tiny_data.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    fear = {"14", "19"}  # fear, nervousness: Ekman's fear
    lines = (data / "train.tsv").read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if not fear & set(line.split("\t")[1].split(","))]
    (data / "train.tsv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="fear"):
        train(data, tmp_path / "m.joblib", n_jobs=1)


# --- the one function Spark and pandas call --------------------------------------------------


def test_classify_comments_loads_the_default_once_across_threads(
    tiny: EmotionClassifier, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_ENV, str(tiny_model))
    monkeypatch.setattr(emotion_model, "_default", None)
    loads: list[Path | None] = []
    original = EmotionClassifier.load.__func__

    def counting_load(cls: type[EmotionClassifier], path: Path | None = None) -> Any:
        loads.append(path)
        return original(cls, path)

    monkeypatch.setattr(EmotionClassifier, "load", classmethod(counting_load))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda t: classify_comments([t])[0], TEXTS * 4))
    assert loads == [None]
    assert results == tiny.classify(TEXTS * 4)


# --- the real artefact (make setup) ----------------------------------------------------------


def test_a_joyful_comment_scores_above_an_angry_one(real: EmotionClassifier) -> None:
    joyful, angry = real.classify([JOYFUL, ANGRY])
    assert joyful.emotion == "joy"
    assert angry.emotion == "anger"
    assert joyful.sentiment > 0.5 > -0.5 > angry.sentiment


def test_real_model_test_split_macro_f1_regression_guard(real: EmotionClassifier) -> None:
    scored = evaluate(real, split="test")
    assert scored["comments"] == 5427
    assert scored["macro_f1"] >= 0.58, scored


# --- the CLI --------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m cinepulse_emotion ARGS`` in a child process (the real exit code)."""
    return subprocess.run(
        [sys.executable, "-m", "cinepulse_emotion", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_classify_prints_one_json_object_per_text(tiny_model: Path) -> None:
    proc = cli("classify", "--model", str(tiny_model), JOYFUL, ANGRY)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 2
    for obj in lines:
        assert set(obj) == {"emotion", "sentiment", "scores", "version"}
        assert obj["emotion"] in EMOTIONS


def test_cli_train_with_a_missing_data_dir_exits_non_zero(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    proc = cli("train", "--data", str(missing), "--out", str(tmp_path / "m.joblib"))
    assert proc.returncode == 2
    assert f"GoEmotions not found at {missing}" in proc.stderr
    assert not (tmp_path / "m.joblib").exists()


def test_cli_train_skips_a_usable_artefact(
    tiny_model: Path, tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tiny_model.stat().st_mtime_ns
    assert main(["train", "--data", str(tiny_data), "--out", str(tiny_model)]) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert tiny_model.stat().st_mtime_ns == before


def test_cli_without_a_model_exits_non_zero_saying_how_to_make_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["classify", "--model", str(tmp_path / "absent.joblib"), "hello"]) == 2
    assert "make setup" in capsys.readouterr().err


def test_cli_evaluate_prints_the_scores(
    tiny_model: Path, tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["evaluate", "--data", str(tiny_data), "--model", str(tiny_model), "--split", "dev"]
    assert main(args) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["split"] == "dev"
    assert list(scored["per_class_f1"]) == list(EMOTIONS)
