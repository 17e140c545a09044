"""Fixtures shared by the unit tests' modules: the chart's scenarios, rendered once
(tests/unit/chart_support.py); a module that needs them asks by name."""

from __future__ import annotations

from typing import Any

import pytest

from cinepulse_devstack import chart
from tests.unit.chart_support import rendered_scenarios


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    """Every ci/ scenario's manifests (``helm template``), by scenario name."""
    return rendered_scenarios()


@pytest.fixture(scope="module")
def default_docs(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """The default scenario's objects."""
    return chart.documents(rendered["default"])
