"""Where things live on a developer machine or CI runner: the checkout, the download cache
and the data sets (tests, benchmarks, demos and model training read them in place).

A data set ``NAME`` is looked for, in this order and nowhere else:

1. in the local mirror: ``$CINEPULSE_DATASETS/NAME`` when the variable is set, else
   ``<repo>/../shared/datasets/NAME`` when that folder exists;
2. in ``<cache>/datasets/NAME``, where ``cinepulse-data fetch`` puts the sets it downloads.
"""

from __future__ import annotations

import os
from pathlib import Path

DATASETS_ENV = "CINEPULSE_DATASETS"


def repo_root() -> Path:
    """The checkout this package runs from (editable install), else the working directory."""
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for d in (start, *start.parents):
            if (d / "migrations").is_dir() and (d / "Makefile").is_file():
                return d
    return Path.cwd()


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/cinepulse``, default ``~/.cache/cinepulse``: downloads and artefacts
    that a second run reuses."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cinepulse"


def datasets_cache() -> Path:
    """Where ``cinepulse-data fetch`` unpacks the data sets: ``<cache>/datasets``."""
    return default_cache() / "datasets"


def dataset_mirrors() -> list[tuple[Path, str]]:
    """The local mirror, if any, with how it was chosen (for messages): ``$CINEPULSE_DATASETS``
    when set (it replaces the other), else ``<repo>/../shared/datasets`` when it exists."""
    env = os.environ.get(DATASETS_ENV)
    if env:
        return [(Path(env), f"${DATASETS_ENV}")]
    beside = repo_root().parent / "shared" / "datasets"
    if beside.is_dir():
        return [(beside, "mirror beside the checkout")]
    return []


def dataset_roots() -> list[Path]:
    """Every folder a data set is looked for in, in order: the mirror, then the cache."""
    return [*(root for root, _ in dataset_mirrors()), datasets_cache()]


def dataset_dir(name: str) -> Path:
    """The folder of data set ``name``: the first of :func:`dataset_roots` that holds it,
    else where ``cinepulse-data fetch`` would put it (for the error message)."""
    for root in dataset_roots():
        if (root / name).is_dir():
            return root / name
    return datasets_cache() / name


def datasets_root() -> Path:
    """The first folder of :func:`dataset_roots` (``$CINEPULSE_DATASETS``, else the mirror
    beside the checkout, else the cache). Prefer :func:`dataset_dir`, which looks for one
    set in every folder in turn."""
    return dataset_roots()[0]
