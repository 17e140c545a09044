"""A retrying client of the gateway, as the reliability page asks clients to be: every request
that got no answer (connection refused, cut, timed out) or a 503 is sent again, unchanged,
until it is answered. Half the requests carry ``event_id``; the other half leave it out and
carry an ``Idempotency-Key`` (resent with the same key and the same content).

The harness's :class:`~tests.drills.harness.Sender` never resends (``retries=0``): its drills
count what a fault refused. This one is for the drill that kills the gateway under requests
in flight: it sends in bursts of concurrent requests (one connection per worker) so that a
kill finds some in flight, and it says how each attempt ended.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from cinepulse_devstack import Stack
from cinepulse_event_gateway.idempotency import HEADER, content_digest, derived_event_id
from tests.drills.harness import drill_events

#: the write key's client the stack's demo key belongs to (the derived ids name it)
CLIENT = "demo"


@dataclass
class Request:
    """One request of the send: its events as sent and the ids the gateway must answer."""

    events: list[dict[str, Any]]
    key: str | None  # the Idempotency-Key (events sent without event_id)
    expected: list[str]  # the given ids, or the ids derived from the key and the content
    answered: dict[int, str] = field(default_factory=dict)  # position -> id answered accepted
    attempts: int = 0
    refused: int = 0  # connection refused / connect timeout: never reached the gateway
    cut: int = 0  # sent, then the connection dropped (or timed out) before any answer
    unavailable: int = 0  # events answered 503 (Kafka did not acknowledge them)
    #: position -> attempts of that event that may have reached Kafka unacknowledged: sent
    #: in a request cut in flight, or answered 503 ("unavailable") for it
    unacknowledged: dict[int, int] = field(default_factory=dict)

    @property
    def resent_after_no_answer(self) -> bool:
        """A first attempt may have reached Kafka without the client knowing."""
        return self.cut > 0 or self.unavailable > 0


def _expected_ids(events: list[dict[str, Any]], key: str | None) -> list[str]:
    if key is None:
        return [str(e["event_id"]) for e in events]
    seen: dict[str, int] = {}  # identical events in one request: told apart by occurrence
    out = []
    for e in events:
        digest = content_digest(json.loads(json.dumps(e)))
        out.append(str(derived_event_id(CLIENT, key, digest, seen.get(digest, 0))))
        seen[digest] = seen.get(digest, 0) + 1
    return out


class ResendingSender:
    """``count`` synthetic events in requests of ``batch_size``, ``workers`` requests at a time
    (a burst every ``workers * batch_size / rate_per_s`` seconds), each resent until answered
    (``give_up_s`` at most)."""

    def __init__(
        self,
        stack: Stack,
        count: int,
        seed: int,
        rate_per_s: float,
        *,
        batch_size: int = 5,
        workers: int = 4,
        give_up_s: float = 240.0,
    ) -> None:
        self.url = stack.gateway.url
        self.write_key = stack.gateway.demo_key()
        self.rate_per_s = rate_per_s
        self.workers = workers
        self.batch_size = batch_size
        self.give_up_s = give_up_s
        events = drill_events(count, seed)
        self.requests: list[Request] = []
        for n, start in enumerate(range(0, count, batch_size)):
            chunk = events[start : start + batch_size]
            if n % 2:  # without event_id: the gateway derives it from the key and the content
                key = str(uuid.uuid4())
                chunk = [{k: v for k, v in e.items() if k != "event_id"} for e in chunk]
            else:
                key = None
            self.requests.append(Request(chunk, key, _expected_ids(chunk, key)))
        self._lock = threading.Lock()
        self._flying: dict[int, float] = {}  # worker -> when its request was sent
        self._threads = [
            threading.Thread(target=self._work, args=(w,), name=f"resender-{w}", daemon=True)
            for w in range(workers)
        ]
        self.errors: list[BaseException] = []

    # ------------------------------------------------------------------ the figures

    @property
    def ids(self) -> list[str]:
        return [i for r in self.requests for i in r.expected]

    @property
    def keyed_ids(self) -> list[str]:
        return [i for r in self.requests if r.key for i in r.expected]

    @property
    def acknowledged_ids(self) -> list[str]:
        return [i for r in self.requests for i in r.answered.values()]

    def mismatched(self) -> list[tuple[str, str]]:
        """(expected, answered) ids that differ: a resend that got a new id."""
        return [
            (r.expected[p], i) for r in self.requests for p, i in r.answered.items()
            if r.expected[p] != i
        ]  # fmt: skip

    def total(self, name: str) -> int:
        return sum(int(getattr(r, name)) for r in self.requests)

    def resent_ids(self) -> set[str]:
        """Ids of requests resent after no answer or a 503."""
        return {i for r in self.requests if r.resent_after_no_answer for i in r.expected}

    def unacknowledged_attempts(self) -> dict[str, int]:
        """Per event id, its attempts that may have reached Kafka without an acknowledgement
        (cut in flight, or answered 503 for that event): the most Kafka records, hence raw
        documents, it may have beyond the one its acknowledged attempt wrote."""
        return {
            r.expected[p]: n for r in self.requests for p, n in r.unacknowledged.items() if n
        }  # fmt: skip

    def in_flight(self, older_than_s: float) -> int:
        """Requests sent at least ``older_than_s`` ago and not answered yet."""
        now = time.monotonic()
        with self._lock:
            return sum(1 for t in self._flying.values() if now - t >= older_than_s)

    # ------------------------------------------------------------------ sending

    def start(self) -> None:
        self.started = time.monotonic()
        for t in self._threads:
            t.start()

    def is_alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def finish(self, timeout_s: float = 400.0) -> None:
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not self.is_alive(), f"the resending client did not finish within {timeout_s:g}s"
        if self.errors:
            raise AssertionError(f"the resending client failed: {self.errors[0]!r}")

    def _mine(self, worker: int) -> Iterable[tuple[int, Request]]:
        return ((n, r) for n, r in enumerate(self.requests) if n % self.workers == worker)

    def _work(self, worker: int) -> None:
        burst_s = self.workers * self.batch_size / self.rate_per_s
        headers = {"X-Write-Key": self.write_key}
        try:
            with httpx.Client(base_url=self.url, headers=headers, timeout=15) as http:
                for n, request in self._mine(worker):
                    due = self.started + (n // self.workers) * burst_s
                    time.sleep(max(0.0, due - time.monotonic()))
                    self._deliver(http, worker, request)
        except BaseException as exc:  # reported by finish()
            self.errors.append(exc)

    def _deliver(self, http: httpx.Client, worker: int, request: Request) -> None:
        pending = list(range(len(request.events)))
        deadline = time.monotonic() + self.give_up_s
        backoff = 0.2
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} events unanswered after {self.give_up_s:g}s")
            headers = {HEADER: request.key} if request.key else {}
            request.attempts += 1
            with self._lock:
                self._flying[worker] = time.monotonic()
            try:
                r = http.post(
                    "/api/events/batch", json=[request.events[p] for p in pending], headers=headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout):
                request.refused += 1
            except httpx.TransportError:  # read/write error, server disconnected, timeout
                request.cut += 1
                for p in pending:  # each may have reached Kafka: the answer never came
                    request.unacknowledged[p] = request.unacknowledged.get(p, 0) + 1
            else:
                if r.status_code == 429:
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                    continue
                if r.status_code not in (202, 503):
                    raise RuntimeError(f"gateway answered {r.status_code}: {r.text[:300]}")
                items = r.json()["results"]
                still = []
                for p, item in zip(pending, items, strict=True):
                    if item["status"] == "accepted":
                        request.answered[p] = str(item["event_id"])
                    elif item["status"] == "unavailable":
                        still.append(p)
                        request.unacknowledged[p] = request.unacknowledged.get(p, 0) + 1
                    else:
                        raise RuntimeError(f"a drill event was refused: {item}")
                request.unavailable += len(still)
                pending = still
                backoff = 0.2
                if pending:
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            finally:
                with self._lock:
                    self._flying.pop(worker, None)
            time.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
