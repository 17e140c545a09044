"""Cinepulse's local stack: real Kafka, PostgreSQL, MongoDB protocol and Prometheus.

Everything lives under one project-owned folder (``.stack/`` at the repository root by
default): configs, data directories, logs and pid files. Downloads and builds are cached in
``~/.cache/cinepulse``. See :mod:`cinepulse_devstack.cli` for the commands.
"""

from cinepulse_devstack.config import StackSettings
from cinepulse_devstack.stack import Stack, StackError

__all__ = ["Stack", "StackError", "StackSettings"]
