"""docs/reference/settings.md is generated from the services' settings classes
(scripts/settings_reference.py) and must be current."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    path = ROOT / "scripts" / "settings_reference.py"
    spec = importlib.util.spec_from_file_location("settings_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_settings_reference_is_current() -> None:
    gen = generator()
    current = gen.OUTPUT.read_text("utf-8") if gen.OUTPUT.exists() else ""
    assert current == gen.render(), (
        "docs/reference/settings.md is stale: "
        "uv run --frozen --all-packages python scripts/settings_reference.py"
    )


def test_it_lists_a_required_variable_and_a_nested_one() -> None:
    text = generator().render()
    assert "| `CINEPULSE_POSTGRES__DSN` | `SecretStr` | **required** |" in text
    assert "`CINEPULSE_LIMITS__MAX_BATCH_EVENTS`" in text
    assert "`CINEPULSE_STACK_KAFKA_PORT`" in text
