"""Shared fixtures.

Unit tests (tests/unit) need nothing running. Integration tests (tests/integration) use the
real local stack: the session fixture starts it, or reuses it when it is already up, and
each test gets isolated state of its own: a topic prefix in Kafka, a database in PostgreSQL
(cloned from a migrated template) and a database on the MongoDB-protocol server.
With ``$CI`` set, a session that skipped a test not allowed to skip in CI fails
(tests/skip_guard.py).
"""

import pytest

from tests import skip_guard
from tests.datasets import check_marks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "dataset(name, *files): needs that data set (tests/datasets.py)"
    )
    skip_guard.install(config)  # in CI, an unlisted skip fails the session


def pytest_runtest_setup(item: pytest.Item) -> None:
    check_marks(item)  # a test marked @needs(<data set>): skip, or in CI fail, when missing
