"""The labelled sample this package ships (``cinepulse_emotion/sample/``), and which data a
model is trained from.

``train`` reads GoEmotions where ``cinepulse-data where goemotions`` finds it; when the set is
not there (a fresh clone, no network beyond the package registries) it trains from the
sample instead: 2,000 GoEmotions comments in the same files and format (train 1,500, dev 250,
test 250, cut from the upstream splits of the same name with a fixed seed by :func:`cut_sample`).
A model trained from it is a *demo model*: its metadata says so (``demo``, ``trained_on``)
and its version carries ``+demo.``; its macro-F1 is measured on the sample's own test part.
Licence and attribution: ``cinepulse_emotion/sample/README.md``.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cinepulse_emotion.goemotions import (
    EMOTIONS,
    SPLITS,
    GoEmotions,
    default_data_dir,
    load_goemotions,
)

#: the shipped sample, a GoEmotions folder of its own (package data)
SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
#: the comments per split of the shipped sample, and the seed it was cut with
SAMPLE_SIZES = {"train": 1500, "dev": 250, "test": 250}
SAMPLE_SEED = 20200705
#: at least this many comments of each Ekman class (and neutral) per split: GoEmotions has
#: under 2% fear and disgust, which a uniform sample of 250 would leave with 4 or 5
SAMPLE_MIN_PER_CLASS = {"train": 60, "dev": 15, "test": 15}

FULL_LABEL = "GoEmotions"
DEMO_LABEL = "shipped sample (demo model)"


@dataclass(frozen=True)
class TrainingData:
    """The data a model is trained from and whether that makes it a demo model."""

    data: GoEmotions
    demo: bool

    @property
    def trained_on(self) -> str:
        return DEMO_LABEL if self.demo else FULL_LABEL


def is_sample(folder: Path) -> bool:
    """Whether ``folder`` is the shipped sample."""
    return Path(folder).resolve() == SAMPLE_DIR


def full_data_available() -> bool:
    """Whether GoEmotions itself is where ``cinepulse-data where`` looks for it."""
    return default_data_dir().is_dir()


def training_data(data_dir: Path | None = None) -> TrainingData:
    """``data_dir`` when given; else GoEmotions when its folder is found (an incomplete one
    is an error, not a reason to fall back); else the shipped sample (a demo model)."""
    if data_dir is not None:
        return TrainingData(load_goemotions(data_dir), demo=is_sample(data_dir))
    if full_data_available():
        return TrainingData(load_goemotions(), demo=False)
    return TrainingData(load_goemotions(SAMPLE_DIR), demo=True)


def cut_sample(
    source: Path,
    dest: Path,
    sizes: dict[str, int] | None = None,
    *,
    seed: int = SAMPLE_SEED,
    min_per_class: dict[str, int] | None = None,
) -> Path:
    """Write a sample of the GoEmotions folder ``source`` to ``dest`` in the same format
    (how the shipped sample was made; deterministic for a given source and seed).

    Per split: the lines in an order shuffled with ``seed``; first those that bring a class
    still under ``min_per_class`` closer to it, then the rest, up to ``sizes[split]``; the
    lines kept are written in their upstream order."""
    sizes = sizes or SAMPLE_SIZES
    minimum = SAMPLE_MIN_PER_CLASS if min_per_class is None else min_per_class
    data = load_goemotions(source)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("emotions.txt", "ekman_mapping.json"):
        shutil.copyfile(data.root / name, dest / name)
    for split in SPLITS:
        lines = [
            line
            for line in (data.root / f"{split}.tsv").read_text(encoding="utf-8").split("\n")
            if line
        ]
        y = data.ekman(data.split(split))
        order = list(range(len(lines)))
        random.Random(f"{seed}:{split}").shuffle(order)  # noqa: S311 - a sample, not a secret
        size = min(sizes[split], len(lines))
        quota = np.full(len(EMOTIONS), minimum.get(split, 0))
        counts = np.zeros(len(EMOTIONS), dtype=int)
        kept: list[int] = []
        for i in order:
            if len(kept) >= size or (counts >= quota).all():
                break
            if (y[i].astype(bool) & (counts < quota)).any():
                kept.append(i)
                counts += y[i]
        taken = set(kept)
        kept += [i for i in order if i not in taken][: size - len(kept)]
        text = "\n".join(lines[i] for i in sorted(kept)) + "\n"
        (dest / f"{split}.tsv").write_text(text, encoding="utf-8")
    return dest
