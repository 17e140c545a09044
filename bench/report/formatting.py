"""How a report writes figures: verdicts, numbers, ratios, units, table cells."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Literal

Better = Literal["higher", "lower"]
Op = Literal[">=", ">", "<=", "<"]

SCHEMA = 1  # of results/bench.json

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


def verdict(ok: bool) -> str:
    """How a report states a target: met, or MISSED (never hidden)."""
    return "met" if ok else "MISSED"


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _num(value: float | None, fmt: str) -> str:
    return format(value, fmt) if value is not None and finite(value) else "n/a"


def _ratio(value: float | None) -> str:
    if value is None or not finite(value):
        return "n/a"
    return f"{value:.2f}x" if 0.01 <= abs(value) < 100 else f"{value:.3g}x"


def _unit(unit: str) -> str:
    return f" {unit}" if unit and unit != "%" else unit


def named(name: str, unit: str) -> str:
    """``name (unit)``, or the bare name when it already says its unit ("fact rows/s")."""
    words = set(re.split(r"[^\w@%]+", name))
    return name if not unit or all(u in words for u in unit.split("/")) else f"{name} ({unit})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
