"""Small data factories shared by the tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

PAYLOADS: dict[str, dict[str, Any]] = {
    "watch": {"position_seconds": 1200, "duration_seconds": 5400},
    "rate": {"rating": 4.5},
    "comment": {"text": "Loved every minute of it ❤️"},
    "click": {"target": "trailer"},
}


def event(event_type: str = "rate", **overrides: Any) -> dict[str, Any]:
    """A valid envelope as a frontend would send it (JSON-ready dict)."""
    now = datetime.now(UTC)
    data: dict[str, Any] = {
        "event_id": str(uuid4()),
        "event_type": event_type,
        "user_id": "user-42",
        "movie_id": 603,
        "occurred_at": (now - timedelta(seconds=5)).isoformat(),
        "session_id": "s-1",
        "payload": dict(PAYLOADS.get(event_type, {})),
    }
    data.update(overrides)
    return data


def with_field(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with the dotted field set (``...`` deletes it)."""
    data = json.loads(json.dumps(base))
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data  # type: ignore[no-any-return]
