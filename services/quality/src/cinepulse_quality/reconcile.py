"""Reconciliation of one time window: every copy of the user events, compared record by record.

The unit is the Kafka record: an event the gateway acknowledged *is* a record on one of the
user-event topics (it answers 202 only after Kafka's ``acks=all``). For the records whose
Kafka timestamp falls in ``[start, end)`` the stores downstream must account for each one:

* **MongoDB** (the archiver's backup): a raw document at the record's position, or, for a
  record that is not a usable JSON object, a dead letter naming that position.
* **PostgreSQL**: a staging row at that position (then a fact with the same ``event_id``), or
  a quarantine row at that position, or, for a repeated ``event_id``, the staging row of the
  copy that was kept (a duplicate is modelled once, by design). A record covered only by a
  pandas-fallback run that is waiting for promotion is reported as such, not as drift: the
  fallback keeps its output apart until an admin promotes it. Promotion registers the run's
  events in staging (at the positions the run read; migration 0011 registered the facts
  promoted before, at the facts' positions). A promoted fact whose staging row is at another
  copy's position is reported as ``promoted``, not as drift. A record
  whose ``event_id`` was already registered with other content (another type, user, payload)
  has a quarantine row at its position (``event_id_conflict``): quarantined, not drift.
* Optionally, a list of **acknowledged** event ids (a client's own log): each must be in the
  window's records.

Drift is any record not accounted for by a store, a staged event without a fact, or an
acknowledged event missing from Kafka. The comparison is a pure function of what the
adapters (:mod:`cinepulse_quality.sources`) observed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cinepulse_common.validation import source_event_id

Position = tuple[str, int, int]

#: differences that are drift (the job fails on any)
DRIFT_KINDS: tuple[str, ...] = (
    "not_archived",
    "not_modelled",
    "staged_without_fact",
    "acknowledged_not_in_kafka",
)


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    position: Position
    #: the id the pipeline keys the record by: its own ``event_id`` (a UUID), the id derived
    #: from its position when it has none, or ``None`` when it cannot be modelled at all
    #: (not a JSON object, or an ``event_id`` that is not a UUID: quarantined by position)
    event_id: str | None


def event_id_of(value: Any, position: Position) -> str | None:
    """The id Spark and the fallback give a record (see :class:`KafkaRecord`)."""
    if not isinstance(value, dict):
        return None
    raw = value.get("event_id")
    if raw is None:
        return source_event_id(*position)
    if not isinstance(raw, str):
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


@dataclass
class Observed:
    """What each store holds of the window's records (ids and positions as found)."""

    records: list[KafkaRecord]
    archived: set[Position] = field(default_factory=set)
    dead_lettered: set[Position] = field(default_factory=set)
    #: event id -> the position of its staging row
    staged: dict[str, Position] = field(default_factory=dict)
    quarantined: set[Position] = field(default_factory=set)
    fact_ids: set[str] = field(default_factory=set)
    pending_fallback_ids: set[str] = field(default_factory=set)
    #: event ids whose main fact is the copy a promoted fallback run inserted
    promoted_ids: set[str] = field(default_factory=set)
    pending_fallback_positions: set[Position] = field(default_factory=set)
    acknowledged: set[str] | None = None


@dataclass
class Report:
    start: datetime
    end: datetime
    counts: dict[str, int]
    differences: dict[str, int]
    examples: dict[str, list[str]]

    @property
    def drift(self) -> bool:
        return any(self.differences[k] for k in DRIFT_KINDS)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "drift": self.drift,
            "counts": self.counts,
            "differences": self.differences,
            "examples": self.examples,
        }


def _fmt(p: Position) -> str:
    return f"{p[0]}:{p[1]}:{p[2]}"


def compare(
    observed: Observed, start: datetime, end: datetime, *, max_examples: int = 20
) -> Report:
    """Account for every record of the window (see the module doc)."""
    o = observed
    found: dict[str, list[str]] = {
        k: []
        for k in (
            *DRIFT_KINDS,
            "deduplicated",
            "pending_promotion",
            "promoted",
        )
    }
    counts = {
        "kafka_records": len(o.records),
        "archived": 0,
        "dead_lettered": 0,
        "staged": 0,
        "quarantined": 0,
        "facts": 0,
    }
    window_ids: set[str] = set()
    for r in o.records:
        pos = r.position
        if pos in o.archived:
            counts["archived"] += 1
        elif pos in o.dead_lettered:
            counts["dead_lettered"] += 1
        else:
            found["not_archived"].append(_fmt(pos))

        kept_at = o.staged.get(r.event_id) if r.event_id else None
        if kept_at == pos:
            counts["staged"] += 1
        elif pos in o.quarantined:
            counts["quarantined"] += 1
        elif kept_at is not None:
            found["deduplicated"].append(_fmt(pos))
        elif r.event_id in o.promoted_ids and r.event_id in o.fact_ids:
            found["promoted"].append(_fmt(pos))
        elif pos in o.pending_fallback_positions or (
            r.event_id is not None and r.event_id in o.pending_fallback_ids
        ):
            found["pending_promotion"].append(_fmt(pos))
        else:
            found["not_modelled"].append(_fmt(pos))
        if r.event_id is not None:
            window_ids.add(r.event_id)

    for event_id, pos in o.staged.items():
        if event_id not in window_ids:
            continue
        if event_id in o.fact_ids:
            counts["facts"] += 1
        else:
            found["staged_without_fact"].append(f"{event_id} ({_fmt(pos)})")
    if o.acknowledged is not None:
        counts["acknowledged"] = len(o.acknowledged)
        found["acknowledged_not_in_kafka"] = sorted(o.acknowledged - window_ids)
    return Report(
        start=start,
        end=end,
        counts=counts,
        differences={k: len(v) for k, v in found.items()},
        examples={k: v[:max_examples] for k, v in found.items() if v},
    )
