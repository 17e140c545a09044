"""Image tests: run by ``make test-images`` after ``make images`` (not part of ``make test``)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "images: needs podman and the images of `make images` (make test-images)"
    )
