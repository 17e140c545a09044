"""Image tests: run by ``make test-images`` after ``make images`` / ``make images-deps`` (not
part of ``make test``)."""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "images: needs podman and the images of `make images` (make test-images)"
    )


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The podman command line (runc; containers.conf without default ulimits)."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman runc)")
    if not os.environ.get("CONTAINERS_CONF"):
        conf = tmp_path_factory.mktemp("podman") / "containers.conf"
        conf.write_text("[containers]\ndefault_ulimits = []\n")
        os.environ["CONTAINERS_CONF"] = str(conf)
    return ["podman", "--runtime", "runc"]
