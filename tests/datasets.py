"""The one way a test asks for a data set (docs/datasets.md).

``require("movielens-small", "tags.csv")`` at module level, in a fixture or in a test returns
the set's folder; ``@needs(...)`` (a ``dataset`` mark) does the same for a test or, as
``pytestmark``, a module. When the set (or one of the files named, default every pinned file) is
missing, the test is skipped with the reason and the command that gets the set (``pytest -ra``
prints it in the summary) or, in CI and under ``make test`` (tests/skip_guard.py ``in_ci``), it
fails with that message: CI has the data, and a skipped data test there would hide a hole."""

from __future__ import annotations

from pathlib import Path

import pytest

from cinepulse_common.datasets import DATASETS
from cinepulse_common.paths import dataset_dir, dataset_roots
from tests.skip_guard import in_ci


def missing(name: str, *files: str) -> str | None:
    """Why data set ``name`` (or one of ``files`` in it) is not usable, else ``None``."""
    folder = dataset_dir(name)
    absent = [f for f in (files or DATASETS[name].sha256) if not (folder / f).is_file()]
    if not absent:
        return None
    looked = " or ".join(str(root / name) for root in dataset_roots())
    return (
        f"data set {name!r} is missing ({', '.join(absent)} not in {looked}): "
        f"{DATASETS[name].fetch_hint()}; `cinepulse-data where` shows where it is looked for"
    )


def require(name: str, *files: str) -> Path:
    """The folder of data set ``name``; skip (locally) or fail (in CI) when it is missing."""
    reason = missing(name, *files)
    if reason is not None:
        if in_ci():
            pytest.fail(f"{reason} (CI runs every data test: fetch the set first)", pytrace=False)
        pytest.skip(reason, allow_module_level=True)
    return dataset_dir(name)


def needs(name: str, *files: str) -> pytest.MarkDecorator:
    """Mark a test (or a module, as ``pytestmark``) as needing data set ``name``: the hook in
    tests/conftest.py runs :func:`require` before each marked test."""
    return pytest.mark.dataset(name, *files)


def check_marks(item: pytest.Item) -> None:
    """For tests/conftest.py's ``pytest_runtest_setup``: :func:`require` each ``dataset``
    mark of ``item``."""
    for mark in item.iter_markers("dataset"):
        require(*mark.args)
