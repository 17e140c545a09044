"""The gateway's unit tests' shared pieces: a fake publisher in place of Kafka, settings, senders.

The real Kafka path (acks, timeouts) is covered by the integration tests; here the publisher
is a small fake that records what it was given and can be told to fail.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from cinepulse_common.rules import load_rules
from cinepulse_event_gateway.app import create_app
from cinepulse_event_gateway.publisher import PublishError, Record
from cinepulse_event_gateway.settings import EventGatewaySettings

KEY = {"X-Write-Key": "k1"}
TOPICS = {
    "watch": "user_watch_log",
    "rate": "user_rating_log",
    "comment": "user_comment_log",
    "click": "user_click_log",
}


class FakePublisher:
    """Stands in for :class:`KafkaPublisher`: records what it is asked to publish."""

    def __init__(self) -> None:
        self.published: list[Record] = []  # every record handed over
        self.acked: list[Record] = []  # those answered as acknowledged
        self.fail_all: str | None = None  # a reason: every record fails
        self.fail_keys: set[bytes] = set()  # records with these keys fail
        self.check_error: Exception | None = None
        self.timeouts: list[float] = []

    async def publish_many(
        self, records: Sequence[Record], timeout_s: float
    ) -> list[PublishError | None]:
        self.timeouts.append(timeout_s)
        out: list[PublishError | None] = []
        for r in records:
            self.published.append(r)
            if self.fail_all is not None:
                out.append(PublishError(self.fail_all))
            elif r.key in self.fail_keys:
                out.append(PublishError("no acknowledgement from Kafka within 5s"))
            else:
                self.acked.append(r)
                out.append(None)
        return out

    def check(self, timeout_s: float = 2.0) -> None:
        if self.check_error is not None:
            raise self.check_error

    def queue_length(self) -> int:
        return 0


#: the keys of most tests: server keys (any user_id), as these tests are about everything but
#: the user binding (test_user_binding.py: frontend keys and their user tokens)
AUTH: dict[str, Any] = {
    "keys": {"web": "k1", "ios": "k2"},
    "write_roles": {"web": "server", "ios": "server"},
}


def make_settings(**overrides: Any) -> EventGatewaySettings:
    values: dict[str, Any] = {
        "kafka": {"bootstrap_servers": "127.0.0.1:1"},
        "auth": AUTH,
    }
    values.update(overrides)
    return EventGatewaySettings(**values)


def make_client(publisher: FakePublisher, **overrides: Any) -> TestClient:
    app = create_app(make_settings(**overrides), publisher=publisher, rules=load_rules())
    return TestClient(app)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _send(c: TestClient, path: str, data: Any, headers: dict[str, str] | None) -> Any:
    # serialised here: httpx's json=None would send no body at all
    body = json.dumps(data, ensure_ascii=False).encode()
    return c.post(
        path, content=body, headers={**KEY, "Content-Type": "application/json", **(headers or {})}
    )


def post(c: TestClient, data: Any, headers: dict[str, str] | None = None) -> Any:
    return _send(c, "/api/events", data, headers)


def post_batch(c: TestClient, data: Any, headers: dict[str, str] | None = None) -> Any:
    return _send(c, "/api/events/batch", data, headers)
