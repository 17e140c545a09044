"""Where things live on a developer machine or CI runner: the checkout, the download cache
and the shared data sets (tests, benchmarks, demos and model training read them in place)."""

from __future__ import annotations

import os
from pathlib import Path

DATASETS_ENV = "CINEPULSE_DATASETS"

#: where the shared data sets are looked for when $CINEPULSE_DATASETS is unset: next to the
#: repository (``../shared/datasets``), else this workplace's shared folder (a CI clone may
#: live elsewhere)
FALLBACK_DATASETS = (Path("/work/shared/datasets"),)


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


def datasets_root() -> Path:
    """``$CINEPULSE_DATASETS``, else ``<repo>/../shared/datasets`` if it exists, else the
    first of :data:`FALLBACK_DATASETS` that exists (else the first choice, for the error)."""
    env = os.environ.get(DATASETS_ENV)
    if env:
        return Path(env)
    beside = repo_root().parent / "shared" / "datasets"
    for candidate in (beside, *FALLBACK_DATASETS):
        if candidate.is_dir():
            return candidate
    return beside
