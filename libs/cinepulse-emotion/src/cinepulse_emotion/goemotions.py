"""GoEmotions (Demszky et al., ACL 2020), read in place from the shared data sets folder:
the train/dev/test splits, the 28 label names and the mapping to Ekman's six emotions.

Each comment carries one or more of 27 fine-grained emotions or ``neutral``. The classifier
learns two groupings of them: Ekman's six plus neutral (``ekman_mapping.json``) and the
paper's sentiment grouping (positive / negative / ambiguous, Demszky et al. section 3.3).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cinepulse_common.paths import DATASETS_ENV, dataset_dir

#: the labels a comment can get, in this order everywhere (a PostgreSQL CHECK uses them)
EMOTIONS = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")

#: GoEmotions' sentiment grouping; the rest (surprise, realization, confusion, curiosity,
#: neutral) is ambiguous or neutral
POSITIVE = frozenset({
    "admiration", "amusement", "approval", "caring", "desire", "excitement", "gratitude", "joy",
    "love", "optimism", "pride", "relief",
})  # fmt: skip
NEGATIVE = frozenset({
    "anger", "annoyance", "disappointment", "disapproval", "disgust", "embarrassment", "fear",
    "grief", "nervousness", "remorse", "sadness",
})  # fmt: skip

SPLITS = ("train", "dev", "test")
#: the files a model is trained from (dev tunes the thresholds); test is only evaluated on
TRAINING_FILES = ("train.tsv", "dev.tsv", "emotions.txt", "ekman_mapping.json")
REQUIRED_FILES = (*TRAINING_FILES, "test.tsv")


class DatasetError(Exception):
    """The GoEmotions folder is missing, incomplete or not in the expected format."""


def default_data_dir() -> Path:
    return dataset_dir("goemotions")


@dataclass(frozen=True)
class Split:
    """One split: the comment texts and the fine-grained label names of each."""

    name: str
    texts: list[str]
    labels: list[frozenset[str]]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class GoEmotions:
    root: Path
    names: tuple[str, ...]  # the 28 label names; position = label id
    to_ekman: dict[str, str]  # fine-grained name -> one of EMOTIONS

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        path = self.root / f"{name}.tsv"
        texts: list[str] = []
        labels: list[frozenset[str]] = []
        for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
            if not line:
                continue
            try:
                text, ids, _comment_id = line.split("\t")
                labels.append(frozenset(self.names[int(i)] for i in ids.split(",")))
            except (ValueError, IndexError) as exc:
                raise DatasetError(f"{path}:{n}: not 'text<TAB>label ids<TAB>id': {exc}") from exc
            texts.append(text)
        return Split(name, texts, labels)

    def ekman(self, split: Split) -> npt.NDArray[np.int8]:
        """Multi-hot ``(n, 7)`` over :data:`EMOTIONS`."""
        y = np.zeros((len(split), len(EMOTIONS)), dtype=np.int8)
        column = {e: j for j, e in enumerate(EMOTIONS)}
        for i, labels in enumerate(split.labels):
            for label in labels:
                y[i, column[self.to_ekman[label]]] = 1
        return y

    @staticmethod
    def sentiment(split: Split) -> npt.NDArray[np.int8]:
        """Multi-hot ``(n, 2)``: has a positive label, has a negative label."""
        return np.array(
            [(bool(labels & POSITIVE), bool(labels & NEGATIVE)) for labels in split.labels],
            dtype=np.int8,
        ).reshape(len(split), 2)

    @cached_property
    def training_sha256(self) -> str:
        """Hash of the files a model is trained and tuned from (not of test)."""
        digest = hashlib.sha256()
        for name in TRAINING_FILES:
            data = (self.root / name).read_bytes()
            digest.update(f"{name}\0{len(data)}\0".encode())
            digest.update(data)
        return digest.hexdigest()


def load_goemotions(root: Path | None = None) -> GoEmotions:
    """The GoEmotions folder at ``root`` (default: where ``cinepulse-data where`` finds it),
    checked: every file present, the Ekman mapping covering each fine-grained emotion exactly once."""
    root = default_data_dir() if root is None else Path(root)
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if missing:
        raise DatasetError(
            f"GoEmotions not found at {root} (missing {', '.join(missing)}): run "
            f"`cinepulse-data fetch goemotions`, pass --data DIR or set ${DATASETS_ENV} to "
            f"a data sets folder that holds goemotions/"
        )
    names = tuple((root / "emotions.txt").read_text(encoding="utf-8").split())
    try:
        mapping = json.loads((root / "ekman_mapping.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{root / 'ekman_mapping.json'}: {exc}") from exc
    to_ekman = {"neutral": "neutral"}
    for ekman, fine in mapping.items():
        if ekman not in EMOTIONS:
            raise DatasetError(f"ekman_mapping.json: unknown Ekman emotion {ekman!r}")
        for name in fine:
            if name in to_ekman:
                raise DatasetError(f"ekman_mapping.json: {name!r} is mapped twice")
            to_ekman[name] = ekman
    if len(names) != 28 or set(names) != set(to_ekman):
        raise DatasetError(
            f"emotions.txt and ekman_mapping.json disagree: unmapped {sorted(set(names) - set(to_ekman))}, "
            f"unknown {sorted(set(to_ekman) - set(names))} ({len(names)} names, expected 28)"
        )
    return GoEmotions(root, names, to_ekman)
