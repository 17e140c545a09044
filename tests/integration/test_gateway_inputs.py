"""Bad input never makes the real gateway fail: a corpus, and schemathesis fuzzing with a
server key and with a frontend key (issue 20: keys of each role), its ``ignored_auth`` and
``negative_data_rejection`` checks; every event the fuzzing got a 202 for is then read back
from Kafka."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from cinepulse_common import topics
from cinepulse_common.access import WRITE_AUDIENCE, sign_user_token
from cinepulse_common.kafka import delete_topics, ensure_topics, make_admin
from cinepulse_common.settings import KafkaSettings
from cinepulse_devstack import Stack
from tests.factories import event, with_field
from tests.integration.fuzzing import FUZZ_CHECKS
from tests.integration.services import ServiceProcess, free_port, read_topics
from tests.integration.test_gateway_archiver import (
    HEADERS,
    USER_TOKEN_SECRET,
    WEB_KEY,
    gateway_env,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    kafka = KafkaSettings(bootstrap_servers=stack.kafka.bootstrap, topic_prefix="inputs.")
    admin = make_admin(kafka)
    names = [kafka.topic(t) for t in topics.USER_EVENT_TOPICS]
    ensure_topics(admin, names)
    port = free_port()
    env = gateway_env(
        kafka,
        CINEPULSE_PORT=str(port),
        CINEPULSE_LIMITS__MAX_BATCH_EVENTS="50",
        CINEPULSE_DOCS_ENABLED="true",  # the fuzzing reads /openapi.json (off in "test")
        # the frontend key's fuzzing sends one user's events: no 429 for its many examples
        CINEPULSE_USER_RATE_LIMIT="unlimited",
    )
    log = Path(tmp_path_factory.mktemp("gw")) / "gateway.log"
    svc = ServiceProcess("cinepulse_event_gateway", env, port, log).start(ready_path="/readyz")
    yield svc
    svc.stop()
    delete_topics(admin, names)


def _with(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``event("rate")`` (or ``base``) with the dotted field set (``...`` deletes it)."""
    return with_field(base or event("rate"), path, value)


FUTURE = (datetime.now(UTC) + timedelta(days=2)).isoformat()
CORPUS: list[tuple[str, bytes | Any, dict[str, str], int, str]] = [
    # (case, body (bytes or JSON-able), extra headers, status, field named in the answer)
    ("malformed JSON", b'{"event_type": "rate",', {}, 422, "body"),
    ("not JSON at all", b"\x00\x01binary", {}, 422, "body"),
    ("JSON array to the single route", [event("rate")], {}, 422, "body"),
    ("JSON string", "rate", {}, 422, "body"),
    ("empty body", b"", {}, 422, "body"),
    ("unknown event type", _with("event_type", "purchase"), {}, 422, "event_type"),
    ("missing event type", _with("event_type", ...), {}, 422, "event_type"),
    ("missing user_id", _with("user_id", ...), {}, 422, "user_id"),
    ("missing payload", _with("payload", ...), {}, 422, "payload"),
    ("wrong type: movie_id string", _with("movie_id", "six-oh-three"), {}, 422, "movie_id"),
    ("wrong type: rating string", _with("payload.rating", "five"), {}, 422, "payload.rating"),
    ("rating off the step", _with("payload.rating", 4.3), {}, 422, "payload.rating"),
    ("rating above range", _with("payload.rating", 5.5), {}, 422, "payload.rating"),
    ("rating NaN-like huge", _with("payload.rating", 1e308), {}, 422, "payload.rating"),
    ("negative movie_id", _with("movie_id", -603), {}, 422, "movie_id"),
    ("movie_id beyond int32", _with("movie_id", 2**40), {}, 422, "movie_id"),
    (
        "negative position",
        _with("payload", {"position_seconds": -1, "duration_seconds": 60}, event("watch")),
        {},
        422,
        "payload.position_seconds",
    ),
    (
        "position beyond duration",
        _with("payload", {"position_seconds": 999, "duration_seconds": 60}, event("watch")),
        {},
        422,
        "payload.position_seconds",
    ),
    ("empty comment", _with("payload.text", "   ", event("comment")), {}, 422, "payload.text"),
    ("huge comment", _with("payload.text", "x" * 5001, event("comment")), {}, 422, "payload.text"),
    (
        "unknown click target",
        _with("payload.target", "buy-now", event("click")),
        {},
        422,
        "payload.target",
    ),
    ("far-future occurred_at", _with("occurred_at", FUTURE), {}, 422, "occurred_at"),
    ("naive occurred_at", _with("occurred_at", "2026-01-01T10:00:00"), {}, 422, "occurred_at"),
    ("not a date", _with("occurred_at", "yesterday"), {}, 422, "occurred_at"),
    ("bad event_id", _with("event_id", "not-a-uuid"), {}, 422, "event_id"),
    ("unknown field", _with("coupon", "FREE"), {}, 422, "coupon"),
    ("user_id with spaces", _with("user_id", "robert'); drop table"), {}, 422, "user_id"),
    ("user_id too long", _with("user_id", "u" * 500), {}, 422, "user_id"),
    (
        "lone surrogate in text",
        b'{"event_type":"comment","user_id":"u1","movie_id":1,"occurred_at":"2026-01-01T00:00:00Z","payload":{"text":"\\ud800"}}',
        {},
        422,
        "",
    ),
    ("no key", event("rate"), {"X-Write-Key": ""}, 401, ""),
    ("wrong key", event("rate"), {"X-Write-Key": "guess"}, 401, ""),
    ("text/plain", event("rate"), {"Content-Type": "text/plain"}, 415, ""),
    ("form-encoded", event("rate"), {"Content-Type": "application/x-www-form-urlencoded"}, 415, ""),
    ("body over 1 MiB", b"{" + b" " * (1 << 20) + b"}", {}, 413, ""),
]


@pytest.mark.parametrize(
    ("body", "extra", "status", "field"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS]
)
def test_bad_input_gets_a_4xx_with_a_reason(
    gateway: ServiceProcess, body: Any, extra: dict[str, str], status: int, field: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**HEADERS, "Content-Type": "application/json", **extra}
    r = httpx.post(gateway.url + "/api/events", content=content, headers=headers, timeout=10)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert detail, "no reason given"
    if field:
        fields = [d["field"] for d in detail]
        assert any(f.startswith(field) or f == field for f in fields), (fields, detail)
        assert all(d["reason"] for d in detail)


def test_unicode_edge_cases_are_accepted(gateway: ServiceProcess) -> None:
    texts = [
        "\U0001f3ac\U0001f37f great \u2764\ufe0f",  # emoji with variation selector
        "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",  # right-to-left scripts
        "e\u0301le\u0301gant",  # combining accents (NFC-normalised downstream)
        "\u200b zero-width space and \u00a0nbsp",
        "\U0001f469\u200d\U0001f469\u200d\U0001f467 family ZWJ sequence",
    ]
    for text in texts:
        r = httpx.post(
            gateway.url + "/api/events",
            json=event("comment", payload={"text": text}),
            headers=HEADERS,
            timeout=10,
        )
        assert r.status_code == 202, (text, r.text)


def test_batch_answers_per_event(gateway: ServiceProcess) -> None:
    good, bad = event("rate"), _with("payload.rating", 9)
    r = httpx.post(gateway.url + "/api/events/batch", json=[good, bad], headers=HEADERS, timeout=10)
    assert r.status_code == 202
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["results"][1]["errors"][0]["field"] == "payload.rating"
    too_many = [event("click") for _ in range(51)]
    r = httpx.post(gateway.url + "/api/events/batch", json=too_many, headers=HEADERS, timeout=10)
    assert r.status_code == 413


schema = schemathesis.pytest.from_fixture("gateway_schema")


@pytest.fixture(scope="module")
def gateway_schema(gateway: ServiceProcess) -> Any:
    spec = schemathesis.openapi.from_url(gateway.url + "/openapi.json")
    # a batch above maxItems (or a body above the byte limit) is refused with 413, as
    # documented: a refusal of invalid data like the 4xx schemathesis expects by default
    rejection = spec.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    return spec


#: the event ids the fuzzing was answered 202 for (read back from Kafka at the end)
ACCEPTED: set[str] = set()


def _note_accepted(response: Any) -> None:
    if response.status_code != 202:
        return
    body = response.json()
    if "results" in body:  # a batch: the accepted ones
        ACCEPTED.update(r["event_id"] for r in body["results"] if r["status"] == "accepted")
    else:
        ACCEPTED.add(body["event_id"])


def _fuzz(case: Any, gateway: ServiceProcess, headers: dict[str, str]) -> None:
    response = case.call_and_validate(
        base_url=gateway.url,
        headers=headers,
        checks=FUZZ_CHECKS,
    )
    _note_accepted(response)


@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_the_openapi_finds_no_server_error(case: Any, gateway: ServiceProcess) -> None:
    _fuzz(case, gateway, HEADERS)  # a server key: any user's events


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_with_a_frontend_key_finds_no_server_error(
    case: Any, gateway: ServiceProcess
) -> None:
    token = sign_user_token(USER_TOKEN_SECRET, "fuzz-user", audience=WRITE_AUDIENCE)
    _fuzz(case, gateway, {"X-Write-Key": WEB_KEY, "X-User-Token": token})


def test_every_event_the_fuzzing_got_a_202_for_is_in_kafka(gateway: ServiceProcess) -> None:
    """Runs after the fuzzing (file order): an acknowledged event is in its topic."""
    assert ACCEPTED, "the fuzzing had no event accepted: the check below would prove nothing"
    kafka = KafkaSettings(
        bootstrap_servers=gateway.env["CINEPULSE_KAFKA__BOOTSTRAP_SERVERS"], topic_prefix="inputs."
    )
    records = read_topics(kafka, list(topics.USER_EVENT_TOPICS), idle_s=5.0, timeout_s=120)
    in_kafka = {json.loads(m.value())["event_id"] for m in records}
    missing = ACCEPTED - in_kafka
    assert not missing, f"{len(missing)} of {len(ACCEPTED)} acknowledged events not in Kafka"
