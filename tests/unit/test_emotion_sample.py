"""The emotion model without GoEmotions: the sample the package ships, the choice of training
data (GoEmotions when it is there, else the sample), the demo-model marking, and ``train``'s
skip logic (a demo model is replaced once GoEmotions is there; a full model is never
replaced by a demo one). Needs no data set: "GoEmotions" here is a folder cut from the sample.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cinepulse_common.paths import DATASETS_ENV
from cinepulse_emotion import EMOTIONS, EmotionClassifier, EmotionModelError, train
from cinepulse_emotion.__main__ import main
from cinepulse_emotion.goemotions import DatasetError, load_goemotions
from cinepulse_emotion.model import MIN_EXAMPLES, MODEL_VERSION, TARGETS
from cinepulse_emotion.sample import (
    DEMO_LABEL,
    FULL_LABEL,
    SAMPLE_DIR,
    SAMPLE_MIN_PER_CLASS,
    SAMPLE_SIZES,
    cut_sample,
    training_data,
)

#: a small "GoEmotions" cut from the sample, so a model trains from it in a second or two
SMALL = {"train": 400, "dev": 80, "test": 80}
SMALL_MIN = {"train": 20, "dev": 5, "test": 5}


@pytest.fixture
def no_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data sets mirror and an empty cache: GoEmotions is nowhere. Returns the
    mirror (a ``goemotions/`` made in it is then found)."""
    mirror = tmp_path / "datasets"
    mirror.mkdir()
    monkeypatch.setenv(DATASETS_ENV, str(mirror))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return mirror


@pytest.fixture(scope="module")
def small_goemotions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("small") / "goemotions"
    return cut_sample(SAMPLE_DIR, folder, SMALL, min_per_class=SMALL_MIN)


def provide_goemotions(mirror: Path, small: Path) -> Path:
    """Put the small "GoEmotions" where ``cinepulse-data where`` finds it."""
    folder = mirror / "goemotions"
    folder.mkdir()
    for f in small.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


def cli(*args: str) -> int:
    return main([*args, "--jobs", "1"])


# --- the shipped sample ----------------------------------------------------------------------


def test_the_shipped_sample_is_a_goemotions_folder_with_every_class() -> None:
    data = load_goemotions(SAMPLE_DIR)
    ids: set[str] = set()
    for split, size in SAMPLE_SIZES.items():
        rows = data.split(split)
        assert len(rows) == size
        counts = data.ekman(rows).sum(axis=0)
        assert (counts >= SAMPLE_MIN_PER_CLASS[split]).all(), dict(
            zip(EMOTIONS, counts, strict=True)
        )
        lines = (SAMPLE_DIR / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        ids |= {line.split("\t")[2] for line in lines}
    assert len(ids) == sum(SAMPLE_SIZES.values())  # no comment twice, across the splits
    train_rows = data.split("train")
    y = np.hstack([data.ekman(train_rows), data.sentiment(train_rows)])
    for target, positives in zip(TARGETS, y.sum(axis=0).tolist(), strict=True):
        assert MIN_EXAMPLES <= positives <= len(y) - MIN_EXAMPLES, target
    # the licence and the attribution travel with the data
    assert "Apache License" in (SAMPLE_DIR / "LICENSE").read_text(encoding="utf-8")
    readme = (SAMPLE_DIR / "README.md").read_text(encoding="utf-8")
    assert "Demszky" in readme and "Apache License 2.0" in readme


def test_cut_sample_is_deterministic_and_keeps_upstream_lines_in_order(tmp_path: Path) -> None:
    a = cut_sample(SAMPLE_DIR, tmp_path / "a", SMALL, min_per_class=SMALL_MIN)
    b = cut_sample(SAMPLE_DIR, tmp_path / "b", SMALL, min_per_class=SMALL_MIN)
    other = cut_sample(SAMPLE_DIR, tmp_path / "c", SMALL, seed=1, min_per_class=SMALL_MIN)
    data = load_goemotions(a)
    for split, size in SMALL.items():
        got = (a / f"{split}.tsv").read_text(encoding="utf-8")
        assert got == (b / f"{split}.tsv").read_text(encoding="utf-8")
        assert got != (other / f"{split}.tsv").read_text(encoding="utf-8")
        source = (SAMPLE_DIR / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        lines = got.splitlines()
        assert len(lines) == size
        positions = [source.index(line) for line in lines]
        assert positions == sorted(positions)
        assert (data.ekman(data.split(split)).sum(axis=0) >= SMALL_MIN[split]).all()
    for name in ("emotions.txt", "ekman_mapping.json"):
        assert (a / name).read_bytes() == (SAMPLE_DIR / name).read_bytes()


# --- which data a model is trained from --------------------------------------------------------


def test_training_data_is_goemotions_when_there_else_the_sample(
    no_datasets: Path, small_goemotions: Path
) -> None:
    fallback = training_data()
    assert fallback.demo and fallback.data.root == SAMPLE_DIR
    assert fallback.trained_on == DEMO_LABEL
    folder = provide_goemotions(no_datasets, small_goemotions)
    full = training_data()
    assert not full.demo and full.data.root == folder
    assert full.trained_on == FULL_LABEL
    # asked for by path: the sample is still a demo, anything else is not
    assert training_data(SAMPLE_DIR).demo
    assert not training_data(small_goemotions).demo


def test_an_incomplete_goemotions_folder_is_an_error_not_a_fallback(no_datasets: Path) -> None:
    (no_datasets / "goemotions").mkdir()
    with pytest.raises(DatasetError, match="cinepulse-data fetch goemotions"):
        training_data()


# --- the demo model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return train(SAMPLE_DIR, tmp_path_factory.mktemp("demo") / "emotion.joblib", n_jobs=1)


def test_a_model_trained_from_the_sample_is_marked_a_demo_model(
    demo_trained: dict[str, Any],
) -> None:
    assert demo_trained["demo"] is True
    assert demo_trained["trained_on"] == "shipped sample (demo model)"
    version = demo_trained["version"]
    assert version.startswith(f"{MODEL_VERSION}+demo.") and len(version.split(".")[-1]) == 8
    assert demo_trained["train_comments"] == SAMPLE_SIZES["train"]
    assert demo_trained["test"]["comments"] == SAMPLE_SIZES["test"]  # the held-out part
    assert 0.0 < demo_trained["test"]["macro_f1"] <= 1.0

    loaded = EmotionClassifier.load(Path(demo_trained["artefact"]))
    assert loaded.is_demo and loaded.version == version
    line = loaded.describe()
    assert line.startswith(f"{version} (demo model: trained on the shipped sample")
    assert f"macro-F1 {demo_trained['test']['macro_f1']:.4f} on 250 held-out comments" in line
    joyful, angry = loaded.classify(["I love this, best movie ever!", "I hate this, awful."])
    assert joyful.sentiment > angry.sentiment


def test_a_full_model_is_not_a_demo_model(small_goemotions: Path, tmp_path: Path) -> None:
    metadata = train(small_goemotions, tmp_path / "full.joblib", n_jobs=1)
    assert metadata["demo"] is False and metadata["trained_on"] == "GoEmotions"
    assert "demo" not in metadata["version"]
    loaded = EmotionClassifier.load(tmp_path / "full.joblib")
    assert not loaded.is_demo
    assert "(trained on GoEmotions, macro-F1" in loaded.describe()


# --- train's skip logic (the command make setup runs) ---------------------------------------------


def metadata_of(path: Path) -> dict[str, Any]:
    return EmotionClassifier.load(path).metadata


def test_without_goemotions_train_makes_a_demo_model_and_says_so(
    no_datasets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models" / "emotion.joblib"
    assert cli("train", "--out", str(out)) == 0
    err = capsys.readouterr().err
    assert "DEMO MODEL" in err and "macro-F1" in err and "held-out" in err
    assert "cinepulse-data fetch goemotions" in err
    assert metadata_of(out)["demo"] is True
    # a second run keeps it, and still says it is a demo model
    before = out.stat().st_mtime_ns
    assert cli("train", "--out", str(out)) == 0
    err = capsys.readouterr().err
    assert "nothing to do" in err and "demo model" in err
    assert out.stat().st_mtime_ns == before


def test_a_demo_model_is_replaced_once_goemotions_is_there(
    no_datasets: Path,
    small_goemotions: Path,
    demo_trained: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "emotion.joblib"
    out.write_bytes(Path(demo_trained["artefact"]).read_bytes())
    provide_goemotions(no_datasets, small_goemotions)
    assert cli("train", "--out", str(out)) == 0
    assert "replacing the demo model" in capsys.readouterr().err
    replaced = metadata_of(out)
    assert replaced["demo"] is False and replaced["trained_on"] == "GoEmotions"


def test_a_full_model_is_never_replaced_by_a_demo_one(
    no_datasets: Path, small_goemotions: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "emotion.joblib"
    train(small_goemotions, out, n_jobs=1)  # a full model; GoEmotions is then not found
    before = out.read_bytes()
    assert cli("train", "--out", str(out)) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert cli("train", "--out", str(out), "--force") == 2
    assert "refusing to replace the full model" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_evaluate_without_goemotions_scores_the_sample(
    no_datasets: Path, demo_trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--model", demo_trained["artefact"], "--split", "test"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["data"] == "shipped sample"
    assert scored["comments"] == SAMPLE_SIZES["test"]
    assert scored["macro_f1"] == demo_trained["test"]["macro_f1"]


def test_an_unreadable_artefact_is_retrained_even_as_a_demo(
    no_datasets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "emotion.joblib"
    out.write_bytes(b"not a model")
    with pytest.raises(EmotionModelError):
        EmotionClassifier.load(out)
    assert cli("train", "--out", str(out)) == 0
    err = capsys.readouterr().err
    assert "retraining" in err and "kept as" in err
    assert metadata_of(out)["demo"] is True
    # it may have been a full model another scikit-learn wrote: kept aside, not overwritten
    assert (tmp_path / "emotion.joblib.unloadable").read_bytes() == b"not a model"


def test_a_full_model_present_needs_no_training_data(
    no_datasets: Path, small_goemotions: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An incomplete GoEmotions folder is an error for training, not for a machine whose
    full model is already there (make setup runs train every time)."""
    out = tmp_path / "emotion.joblib"
    train(small_goemotions, out, n_jobs=1)
    broken = tmp_path / "broken-goemotions"
    broken.mkdir()
    (broken / "train.tsv").write_text("")
    assert cli("train", "--out", str(out), "--data", str(broken)) == 0
    assert "nothing to do" in capsys.readouterr().err
