"""Small data factories shared by the tests."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
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


def goemotions_sample(dest: Path, quotas: dict[str, int] | None = None) -> Path:
    """A small GoEmotions folder at ``dest`` cut from the sample the package ships (so no data
    set is needed): per split, the first lines that bring each of the classifier's targets
    (Ekman's six, neutral, positive, negative) to its quota of comments (default train 40,
    dev 15, test 15), so a model trains from it in about a second."""
    import numpy as np

    from cinepulse_emotion.goemotions import load_goemotions
    from cinepulse_emotion.sample import SAMPLE_DIR

    data = load_goemotions(SAMPLE_DIR)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("emotions.txt", "ekman_mapping.json"):
        shutil.copyfile(data.root / name, dest / name)
    for split, quota in (quotas or {"train": 40, "dev": 15, "test": 15}).items():
        lines = [
            line for line in (data.root / f"{split}.tsv").read_text("utf-8").split("\n") if line
        ]
        rows = data.split(split)
        targets = np.hstack([data.ekman(rows), data.sentiment(rows)])
        counts = np.zeros(targets.shape[1], dtype=int)
        kept = []
        for line, row in zip(lines, targets, strict=True):
            if (row.astype(bool) & (counts < quota)).any():
                kept.append(line)
                counts += row
        (dest / f"{split}.tsv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    return dest
