"""Events through the in-cluster gateway for the real-node e2e, and where each acknowledged
one landed: posted through the API server's service proxy (a gateway pod going away is
ridden through by sending the same ids again), counted in MongoDB and PostgreSQL through
port-forwards."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from cinepulse_common.settings import MongoSettings
from cinepulse_devstack.demo_events import count_archived, count_modelled, synthetic_events
from cinepulse_devstack.kube import StepFailed


@dataclass
class Traffic:
    what: str
    sent: int = 0
    acknowledged: int = 0
    archived: int = 0
    modelled: int = 0
    seconds: float = 0.0
    acked_ids: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.acknowledged - min(self.archived, self.modelled)


def post_events(gateway: str, key: str, events: Sequence[dict[str, Any]], traffic: Traffic,
                *, rate_per_s: float = 50, deadline_s: float = 600,
                host: str | None = None) -> None:  # fmt: skip
    """POST ``events`` in batches of 10 through the service proxy (or an ingress
    controller, with the gateway's ``host``); a batch that is not answered (a gateway pod
    going away, the proxy's 502/503) or items answered ``unavailable`` are sent again with
    the same ids, as a frontend would."""
    t0 = time.monotonic()
    headers = {"X-Write-Key": key, **({"Host": host} if host else {})}
    with httpx.Client(base_url=gateway, headers=headers, timeout=30) as http:
        for start in range(0, len(events), 10):
            batch = list(events[start : start + 10])
            traffic.sent += len(batch)
            while batch:
                if time.monotonic() - t0 > deadline_s:
                    raise StepFailed(f"events not acknowledged within {deadline_s:.0f}s")
                try:
                    r = http.post("/api/events/batch", json=batch)
                except httpx.HTTPError:
                    time.sleep(0.5)
                    continue
                if r.status_code not in (202, 503) or "results" not in r.text:
                    if r.status_code in (401, 403, 422):
                        raise StepFailed(f"gateway answered {r.status_code}: {r.text[:300]}")
                    time.sleep(0.5)
                    continue
                again = []
                for event, item in zip(batch, r.json()["results"], strict=True):
                    if item["status"] == "accepted":
                        traffic.acknowledged += 1
                        traffic.acked_ids.append(str(item["event_id"]))
                    elif item["status"] == "rejected":
                        raise StepFailed(f"event rejected: {item}")
                    else:
                        again.append(event)
                batch = again
            time.sleep(max(0.0, t0 + traffic.sent / rate_per_s - time.monotonic()))
    traffic.seconds = time.monotonic() - t0


def fresh_events(count: int, seed: int) -> list[dict[str, Any]]:
    """Synthetic events with ids of this run (a second run must not find the first's)."""
    events = synthetic_events(count, seed)
    for e in events:
        e["event_id"] = str(uuid.uuid4())
    return events


@dataclass
class Stores:
    """The release's databases, reached through port-forwards."""

    mongo: MongoSettings
    dsn: str

    def tally(self, traffic: Traffic, timeout_s: float) -> Traffic:
        ids = traffic.acked_ids
        deadline = time.monotonic() + timeout_s
        while True:
            traffic.archived = count_archived(self.mongo, ids)
            traffic.modelled = count_modelled(self.dsn, ids)
            if traffic.lost == 0 or time.monotonic() > deadline:
                return traffic
            time.sleep(3)
