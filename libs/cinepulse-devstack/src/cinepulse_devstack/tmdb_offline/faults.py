"""What the admin endpoints steer: injected faults, recorded changes, request stats, and the
malformed bodies a fault answers with."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse, Response

from cinepulse_devstack.tmdb_offline.data import Json

FAULT_ORDER = ("status_429", "status_5xx", "malformed", "slow")
MALFORMED_KINDS = ("truncated", "missing_fields", "nulls", "extra_fields", "not_json")
DEFAULT_FAULT_PATHS = r"^/3/"

# What the malformed faults take away or null out.
MISSING_FIELDS = ("id", "title", "genres")
NULLED_FIELDS = (
    "adult", "genres", "genre_ids", "runtime", "release_date", "title", "overview",
    "popularity", "vote_average", "vote_count", "budget", "revenue", "production_companies",
    "spoken_languages", "keywords",
)  # fmt: skip


@dataclass
class Fault:
    kind: str  # one of FAULT_ORDER
    remaining: int
    params: Json
    path_regex: re.Pattern[str]

    def describe(self) -> Json:
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "path_regex": self.path_regex.pattern,
            **self.params,
        }


def parse_faults(body: Any) -> list[Fault]:
    """The faults of a ``POST /__admin/faults`` body; ValueError says what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    unknown = set(body) - {*FAULT_ORDER, "path_regex"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; expected {[*FAULT_ORDER, 'path_regex']}")
    pattern = body.get("path_regex") or DEFAULT_FAULT_PATHS
    try:
        regex = re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise ValueError(f"path_regex: {exc}") from exc
    faults = []
    for kind in FAULT_ORDER:
        spec = body.get(kind)
        if spec is None:
            continue
        if not isinstance(spec, dict):
            raise ValueError(f"{kind} must be an object")
        count = spec.get("count", 1)
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"{kind}.count must be a non-negative integer")
        params: Json
        if kind == "status_429":
            retry_after = spec.get("retry_after", 1)
            if not isinstance(retry_after, int | float) or retry_after < 0:
                raise ValueError("status_429.retry_after must be a number of seconds")
            params = {"retry_after": retry_after}
        elif kind == "status_5xx":
            status = spec.get("status", 500)
            if not isinstance(status, int) or not 500 <= status <= 599:
                raise ValueError("status_5xx.status must be a 5xx status")
            params = {"status": status}
        elif kind == "slow":
            delay = spec.get("delay_s", 1.0)
            if not isinstance(delay, int | float) or delay < 0:
                raise ValueError("slow.delay_s must be a number of seconds")
            params = {"delay_s": float(delay)}
        else:
            mkind = spec.get("kind", "truncated")
            if mkind not in MALFORMED_KINDS:
                raise ValueError(f"malformed.kind must be one of {list(MALFORMED_KINDS)}")
            params = {"kind": mkind}
        faults.append(Fault(kind, count, params, regex))
    return faults


def parse_instant(text: str, *, end_of_day: bool = False) -> datetime:
    """A ``YYYY-MM-DD`` date (its start, or its last microsecond with ``end_of_day``) or an
    ISO datetime, as an aware UTC datetime (naive datetimes are taken as UTC)."""
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = date.fromisoformat(text)
        return datetime.combine(day, dtime.max if end_of_day else dtime.min, tzinfo=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass
class State:
    """Everything the admin endpoints steer; ``reset`` brings back the start state."""

    faults: list[Fault] = field(default_factory=list)
    changes: list[tuple[datetime, int]] = field(default_factory=list)
    edits: dict[int, Json] = field(default_factory=dict)  # id -> fields over the CSV's
    requests: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    faults_served: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    recent: deque[float] = field(default_factory=deque)  # accepted request times (rate limit)

    def reset(self) -> None:
        self.faults.clear()
        self.changes.clear()
        self.edits.clear()
        self.requests.clear()
        self.faults_served.clear()
        self.rate_limited = 0
        self.recent.clear()

    def take_fault(self, path: str) -> Fault | None:
        """The fault this request gets, if any: 429 before 5xx before malformed before slow."""
        for kind in FAULT_ORDER:
            for fault in self.faults:
                if fault.kind == kind and fault.remaining > 0 and fault.path_regex.search(path):
                    fault.remaining -= 1
                    self.faults_served[kind] += 1
                    if kind == "malformed":
                        self.faults_served[f"malformed:{fault.params['kind']}"] += 1
                    self.faults = [f for f in self.faults if f.remaining > 0]
                    return fault
        return None


# --------------------------------------------------------------------------------------------
# Malformed bodies


def _targets(payload: Json) -> list[Json]:
    """The objects a malformed fault damages: the entries of a list answer (``results``),
    else the answer itself."""
    items = payload.get("results")
    if isinstance(items, list) and items and all(isinstance(i, dict) for i in items):
        return list(items)
    return [payload]


def malform(payload: Json, kind: str, status_code: int = 200) -> Response:
    """``payload`` damaged the way ``kind`` says, with the status it would have had."""
    if kind == "not_json":
        return PlainTextResponse(
            "<html><body>upstream answered garbage</body></html>", status_code=status_code
        )
    if kind == "truncated":
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return Response(
            text[: max(1, len(text) // 2)], status_code=status_code, media_type="application/json"
        )
    damaged = json.loads(json.dumps(payload))  # a deep copy: never touch the stored movie
    for obj in _targets(damaged):
        if kind == "missing_fields":
            for key in MISSING_FIELDS:
                obj.pop(key, None)
        elif kind == "nulls":
            for key in NULLED_FIELDS:
                if key in obj:
                    obj[key] = None
        elif kind == "extra_fields":
            obj["x_offline_unexpected"] = {"nested": [1, "two", None]}
            obj["rating_v2"] = "not-a-number"
    if kind == "extra_fields":
        damaged["x_offline_extra"] = True
    return JSONResponse(damaged, status_code=status_code)
