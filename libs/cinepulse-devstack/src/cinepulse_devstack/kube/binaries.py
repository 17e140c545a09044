"""Where the control-plane binaries are (``bash scripts/k8s-tools.sh`` builds them)."""

from __future__ import annotations

import os
from pathlib import Path

from cinepulse_common.paths import datasets_root, default_cache
from cinepulse_devstack.kube.constants import BINARIES


def bin_dir() -> Path:
    return default_cache() / "bin" / "k8s"


def binary(name: str) -> str:
    return str(bin_dir() / name)


def missing_binaries() -> list[str]:
    """The control-plane binaries not built yet (``bash scripts/k8s-tools.sh`` builds them)."""
    d = bin_dir()
    return [
        n
        for n in BINARIES
        if not (d / n).is_file()
        or not os.access(d / n, os.X_OK)
        or not (d / f".{n}.version").is_file()
    ]


def kube_version() -> str:
    """The built Kubernetes version (the stamp scripts/k8s-tools.sh wrote), e.g. v1.34.4."""
    return (bin_dir() / ".kube-apiserver.version").read_text().strip()


def crds_dir() -> Path:
    return datasets_root().parent / "k8s-crds"
