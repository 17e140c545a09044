"""The event types, a leaf module: the envelope (:mod:`cinepulse_common.events`) and the
transform rules (:mod:`cinepulse_common.rules`) both name them, and neither imports the
other through it."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    WATCH = "watch"
    RATE = "rate"
    COMMENT = "comment"
    CLICK = "click"
