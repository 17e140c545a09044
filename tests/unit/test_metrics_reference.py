"""docs/reference/metrics.md is generated from the services' metric definitions
(scripts/metrics_reference.py) and must be current."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    path = ROOT / "scripts" / "metrics_reference.py"
    spec = importlib.util.spec_from_file_location("metrics_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_metrics_reference_is_current() -> None:
    gen = generator()
    current = gen.OUTPUT.read_text("utf-8") if gen.OUTPUT.exists() else ""
    assert current == gen.render(), (
        "docs/reference/metrics.md is stale: "
        "uv run --frozen --all-packages python scripts/metrics_reference.py"
    )


def test_it_lists_metrics_as_prometheus_exposes_them() -> None:
    text = generator().render()
    assert "| `cinepulse_gateway_events_accepted_total` | counter | `event_type` |" in text
    assert "| `cinepulse_api_http_requests_total` | counter | `route`, `method`, `status` |" in text
    assert "| `cinepulse_recommender_model_info` | info | |" in text
    assert "| `cinepulse_quality_drift` | gauge | |" in text
