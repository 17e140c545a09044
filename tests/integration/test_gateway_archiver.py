"""Gateway and archiver against the real local Kafka and MongoDB-protocol server."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cinepulse_common import topics
from cinepulse_common.access import WRITE_AUDIENCE, sign_user_token
from cinepulse_common.kafka import make_producer
from cinepulse_common.mongo import make_client
from cinepulse_common.settings import KafkaSettings, MongoSettings
from cinepulse_devstack import Stack
from tests.factories import event
from tests.integration.services import ServiceProcess, free_port, read_topics, service_env

pytestmark = pytest.mark.integration

KEY = "it-write-key-0001"
HEADERS = {"X-Write-Key": KEY}
#: a browser's key: not listed in the roles, so a frontend key (its events only for the user
#: of its X-User-Token, signed with USER_TOKEN_SECRET, the api's setting)
WEB_KEY = "it-web-write-key-0001"
USER_TOKEN_SECRET = "it-user-token-secret-of-at-least-32-bytes"


def gateway_env(kafka: KafkaSettings, **extra: str) -> dict[str, str]:
    return service_env(
        CINEPULSE_KAFKA__BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
        CINEPULSE_KAFKA__TOPIC_PREFIX=kafka.topic_prefix,
        CINEPULSE_AUTH__KEYS=json.dumps({"it": KEY, "web": WEB_KEY}),
        # the tests replay many users' events with the it key: a server key
        CINEPULSE_AUTH__WRITE_ROLES=json.dumps({"it": "server"}),
        CINEPULSE_AUTH__USER_TOKEN_SECRET=USER_TOKEN_SECRET,
        # bursts and fuzzed batches of up to 500 events: the default 100/s would refuse them
        CINEPULSE_RATE_LIMITS=json.dumps({"it": "unlimited"}),
        CINEPULSE_LIMITS__PRODUCE_TIMEOUT_S="3",
        CINEPULSE_LIMITS__RETRY_AFTER_S="2",
        **extra,
    )


def archiver_env(kafka: KafkaSettings, mongo: MongoSettings, data_dir: Path) -> dict[str, str]:
    return service_env(
        CINEPULSE_KAFKA__BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
        CINEPULSE_KAFKA__TOPIC_PREFIX=kafka.topic_prefix,
        CINEPULSE_MONGO__URL=mongo.url.get_secret_value(),
        CINEPULSE_MONGO__DATABASE=mongo.database,
        CINEPULSE_APP_ID=f"archiver-{kafka.topic_prefix.rstrip('.')}",
        CINEPULSE_DATA_DIR=str(data_dir),
        CINEPULSE_BATCH_SIZE="200",
        CINEPULSE_BATCH_WITHIN_S="0.2",
        CINEPULSE_SESSION_TIMEOUT_S="6",
    )


@pytest.fixture
def gateway(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(
        "cinepulse_event_gateway",
        gateway_env(kafka_settings, CINEPULSE_PORT=str(port := free_port())),
        port,
        tmp_path / "gateway.log",
    ).start(ready_path="/readyz")
    yield svc
    svc.stop()


def start_archiver(kafka: KafkaSettings, mongo: MongoSettings, tmp_path: Path) -> ServiceProcess:
    port = free_port()
    env = archiver_env(kafka, mongo, tmp_path / "archiver-data") | {"CINEPULSE_WEB_PORT": str(port)}
    return ServiceProcess("cinepulse_archiver", env, port, tmp_path / "archiver.log").start(
        ready_path="/readyz"
    )


@pytest.fixture
def archiver(
    kafka_settings: KafkaSettings, mongo_settings: MongoSettings, tmp_path: Path
) -> Iterator[ServiceProcess]:
    svc = start_archiver(kafka_settings, mongo_settings, tmp_path)
    yield svc
    svc.stop()


def mongo_docs(mongo: MongoSettings, collection: str = "user_logs") -> list[dict[str, Any]]:
    with make_client(mongo) as client:
        return list(client[mongo.database][collection].find({}))


def mongo_count(mongo: MongoSettings, collection: str = "user_logs") -> int:
    with make_client(mongo) as client:
        return int(client[mongo.database][collection].count_documents({}))


def wait_for_docs(
    mongo: MongoSettings, at_least: int, timeout_s: float = 90.0, collection: str = "user_logs"
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    docs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        docs = mongo_docs(mongo, collection)
        if len(docs) >= at_least:
            time.sleep(1.0)  # anything beyond would be a duplicate: give it a chance to show
            return mongo_docs(mongo, collection)
        time.sleep(0.5)
    raise AssertionError(f"only {len(docs)} of {at_least} documents in MongoDB after {timeout_s}s")


def test_posted_events_reach_kafka_by_key_and_mongodb_once(
    gateway: ServiceProcess,
    archiver: ServiceProcess,
    kafka_settings: KafkaSettings,
    mongo_settings: MongoSettings,
) -> None:
    sent = {}
    with httpx.Client(base_url=gateway.url, headers=HEADERS, timeout=10) as http:
        for i, etype in enumerate(["watch", "rate", "comment", "click"] * 5):
            ev = event(etype, user_id=f"user-{i % 7}")
            r = http.post("/api/events", json=ev)
            assert r.status_code == 202, r.text
            assert r.json()["event_id"] == ev["event_id"]
            sent[ev["event_id"]] = ev
        batch = [event(t, user_id="user-batch") for t in ("rate", "click", "comment")]
        r = http.post("/api/events/batch", json=batch)
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 3
        sent |= {e["event_id"]: e for e in batch}
        # an event without an id gets one from the gateway
        anonymous = event("rate")
        del anonymous["event_id"]
        r = http.post("/api/events", json=anonymous)
        assert r.status_code == 202
        sent[r.json()["event_id"]] = anonymous | {"event_id": r.json()["event_id"]}

    records = read_topics(kafka_settings, list(topics.USER_EVENT_TOPICS), expect=len(sent))
    assert len(records) == len(sent)
    for msg in records:
        value = json.loads(msg.value())
        original = sent[value["event_id"]]
        assert msg.topic() == kafka_settings.topic(
            {
                "watch": "user_watch_log",
                "rate": "user_rating_log",
                "comment": "user_comment_log",
                "click": "user_click_log",
            }[original["event_type"]]
        )
        assert msg.key() == original["user_id"].encode()
        assert value["received_at"] is not None
        assert value["payload"] == original["payload"] or original["event_type"] == "rate"

    docs = wait_for_docs(mongo_settings, len(sent))
    assert Counter(d["event_id"] for d in docs) == Counter(set(sent))  # each exactly once
    by_id = {d["event_id"]: d for d in docs}
    one = by_id[batch[0]["event_id"]]
    assert one["record"]["user_id"] == "user-batch"
    assert {"topic", "partition", "offset", "received_at"} <= one.keys()
    assert one["_id"] == f"{one['topic']}:{one['partition']}:{one['offset']}"

    trending = httpx.get(archiver.url + "/counters/trending", params={"limit": 5}).json()
    assert trending["movies"][0] == {"movie_id": 603, "events": len(sent)}
    per_minute = httpx.get(archiver.url + "/counters/events_per_minute").json()
    total = sum(sum(m["counts"].values()) for m in per_minute["minutes"])
    assert total == len(sent)
    metrics = httpx.get(archiver.url + "/metrics").text
    assert "cinepulse_archiver_written_total" in metrics
    assert "cinepulse_archiver_consumer_lag" in metrics


def test_unparseable_records_go_to_the_dead_letter_topic(
    archiver: ServiceProcess, kafka_settings: KafkaSettings, mongo_settings: MongoSettings
) -> None:
    producer = make_producer(kafka_settings)
    topic = kafka_settings.topic(topics.USER_CLICK_LOG)
    bad = [b"{not json", b"\xff\xfe binary", b"[1, 2, 3]", b'{"n": 123456789012345678901234567890}']
    for value in bad:
        producer.produce(topic, key=b"user-x", value=value)
    good = event("click")
    producer.produce(topic, key=b"user-42", value=json.dumps(good).encode())
    assert producer.flush(10) == 0

    dead = read_topics(kafka_settings, [topics.DEAD_LETTER], expect=len(bad))
    reasons = {json.loads(m.value())["code"] for m in dead}
    assert reasons == {"not_json", "not_utf8", "not_object", "not_storable"}
    for m in dead:
        body = json.loads(m.value())
        assert body["source_topic"] == topic and body["reason"]
        assert dict(m.headers() or [])["x-reason"]
    docs = wait_for_docs(mongo_settings, 1)
    assert [d["event_id"] for d in docs] == [good["event_id"]]


class Sender(threading.Thread):
    """Posts events one at a time (with client event ids) and records every answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.answers: list[tuple[str, int, dict[str, str]]] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=HEADERS, timeout=15) as http:
            while not self.stop.is_set():
                ev = event("rate", user_id=f"user-{len(self.answers) % 11}")
                try:
                    r = http.post("/api/events", json=ev)
                    self.answers.append((ev["event_id"], r.status_code, dict(r.headers)))
                except httpx.HTTPError:
                    self.answers.append((ev["event_id"], 0, {}))
                time.sleep(0.01)

    def statuses(self) -> Counter[int]:
        return Counter(s for _, s, _ in self.answers)

    def accepted(self) -> set[str]:
        return {eid for eid, s, _ in self.answers if s == 202}


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_kafka_stopped_mid_run_answers_503_and_loses_nothing_acknowledged(
    stack: Stack,
    gateway: ServiceProcess,
    archiver: ServiceProcess,
    kafka_settings: KafkaSettings,
    mongo_settings: MongoSettings,
) -> None:
    sender = Sender(gateway.url)
    sender.start()
    try:
        _wait(lambda: len(sender.accepted()) >= 50, 30, "50 accepted events")
        stack.down(["kafka"])
        outage_start = len(sender.answers)
        _wait(lambda: sender.statuses()[503] >= 3, 60, "503 answers while Kafka is down")
        during = sender.answers[outage_start:]
        unavailable = [h for _, s, h in during if s == 503]
        assert all(h.get("retry-after") == "2" for h in unavailable)
        stack.up(["kafka"])  # starts it and waits until it answers
        after = len(sender.accepted())
        _wait(lambda: len(sender.accepted()) >= after + 50, 90, "acceptance after Kafka is back")
    finally:
        sender.stop.set()
        sender.join(30)
        stack.up(["kafka"])  # whatever happened, later tests get their Kafka back

    statuses = sender.statuses()
    assert set(statuses) <= {202, 503}, statuses  # never another 5xx, never a hang
    accepted = sender.accepted()

    in_kafka = {
        json.loads(m.value())["event_id"]
        for m in read_topics(kafka_settings, [topics.USER_RATING_LOG], expect=len(accepted))
    }
    assert accepted <= in_kafka, f"acknowledged but not in Kafka: {len(accepted - in_kafka)}"

    docs = wait_for_docs(mongo_settings, len(in_kafka), timeout_s=120)
    archived = Counter(d["event_id"] for d in docs)
    assert accepted <= set(archived), (
        f"acknowledged but not archived: {len(accepted - set(archived))}"
    )
    assert max(archived.values()) == 1 or _kafka_has_duplicates(kafka_settings, archived)


def _kafka_has_duplicates(kafka: KafkaSettings, archived: Counter[str]) -> bool:
    """A document per Kafka record: a repeated event_id in MongoDB must be a repeated record."""
    records = Counter(
        json.loads(m.value())["event_id"] for m in read_topics(kafka, [topics.USER_RATING_LOG])
    )
    return records == archived


def test_archiver_killed_mid_stream_loses_and_duplicates_nothing(
    kafka_settings: KafkaSettings, mongo_settings: MongoSettings, tmp_path: Path
) -> None:
    producer = make_producer(kafka_settings)
    ids = []
    for i in range(12_000):
        ev = event(["watch", "rate", "comment", "click"][i % 4], user_id=f"user-{i % 97}")
        ids.append(ev["event_id"])
        topic = kafka_settings.topic(
            {
                "watch": topics.USER_WATCH_LOG,
                "rate": topics.USER_RATING_LOG,
                "comment": topics.USER_COMMENT_LOG,
                "click": topics.USER_CLICK_LOG,
            }[ev["event_type"]]
        )
        producer.produce(topic, key=ev["user_id"].encode(), value=json.dumps(ev).encode())
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0

    first = start_archiver(kafka_settings, mongo_settings, tmp_path)
    try:
        # killed as soon as its first batches are in (a count, not a read of every document:
        # a slow poll let the archiver finish first on a quiet machine)
        _wait(lambda: mongo_count(mongo_settings) >= 500, 90, "500 archived documents")
        first.kill()
        killed_at = len(mongo_docs(mongo_settings))
        assert killed_at < len(ids), "the archiver finished before it was killed"
    finally:
        first.kill()
    second = start_archiver(kafka_settings, mongo_settings, tmp_path)
    try:
        docs = wait_for_docs(mongo_settings, len(ids), timeout_s=180)
        metrics = httpx.get(second.url + "/metrics").text
    finally:
        second.stop()
    counts = Counter(d["event_id"] for d in docs)
    assert len(docs) == len(ids)
    assert set(counts) == set(ids) and max(counts.values()) == 1
    assert "cinepulse_archiver_written_total" in metrics


def test_offsets_committed_but_never_archived_are_read_again(
    kafka_settings: KafkaSettings, mongo_settings: MongoSettings, tmp_path: Path
) -> None:
    """faust can skip records around a rebalance and still commit their offsets (the fault
    drill "SIGKILL Kafka during ingest" lost acknowledged events so). Here the archive holds
    offsets 0..49 of a partition while the group's committed offset says 70: the archiver
    finds 50..69 missing before the first record it is given, reads them again from Kafka
    and archives them, then carries on."""
    from confluent_kafka import TopicPartition

    from cinepulse_archiver.documents import Source, to_document
    from cinepulse_common.kafka import make_consumer

    topic = kafka_settings.topic(topics.USER_RATING_LOG)
    producer = make_producer(kafka_settings)
    positions: list[tuple[int, int]] = []
    events = [event("rate", user_id="user-gap") for _ in range(120)]  # one key: one partition
    for ev in events:
        producer.produce(
            topic,
            key=b"user-gap",
            value=json.dumps(ev).encode(),
            on_delivery=lambda err, m: positions.append((m.partition(), m.offset())),
        )
    assert producer.flush(30) == 0
    (partition,) = {p for p, _ in positions}
    assert sorted(o for _, o in positions) == list(range(120))
    with make_client(mongo_settings) as client:  # what was archived before the skip
        client[mongo_settings.database]["user_logs"].insert_many(
            [
                to_document(
                    Source(topic, partition, o, b"user-gap", None),
                    json.dumps(events[o]).encode(),
                    datetime.now(UTC),
                    movie_topic=False,
                )[1]
                for o in range(50)
            ]
        )
    group = make_consumer(kafka_settings, f"archiver-{kafka_settings.topic_prefix.rstrip('.')}")
    group.commit(offsets=[TopicPartition(topic, partition, 70)], asynchronous=False)
    group.close()

    archiver = start_archiver(kafka_settings, mongo_settings, tmp_path)
    try:
        docs = wait_for_docs(mongo_settings, 120, timeout_s=120)
        metrics = httpx.get(archiver.url + "/metrics").text
    finally:
        archiver.stop()
    assert Counter(d["offset"] for d in docs) == Counter(range(120))  # each once
    assert {d["event_id"] for d in docs} == {e["event_id"] for e in events}
    assert f'cinepulse_archiver_gap_records_total{{topic="{topic}"}} 20.0' in metrics
    assert f'cinepulse_archiver_gaps_total{{topic="{topic}"}} 1.0' in metrics


def test_gateway_rejects_without_a_valid_key_and_reports_readiness(gateway: ServiceProcess) -> None:
    r = httpx.post(gateway.url + "/api/events", json=event("rate"))
    assert r.status_code == 401
    r = httpx.post(gateway.url + "/api/events", json=event("rate"), headers={"X-Write-Key": "nope"})
    assert r.status_code == 401
    ready = httpx.get(gateway.url + "/readyz").json()
    assert ready == {"status": "ok", "checks": {"gateway": "ok"}}  # Kafka: in the metrics
    assert uuid.UUID(
        httpx.post(gateway.url + "/api/events", json=event("rate"), headers=HEADERS).json()[
            "event_id"
        ]
    )


def test_a_frontend_keys_events_reach_kafka_only_for_its_tokens_user(
    gateway: ServiceProcess, kafka_settings: KafkaSettings
) -> None:
    """A frontend key with the user's signed token gets that user's events into Kafka; a
    forged token (another secret), no token, or an event for another user gets nothing in."""
    web = {"X-Write-Key": WEB_KEY}
    good = {
        **web,
        "X-User-Token": sign_user_token(USER_TOKEN_SECRET, "alice", audience=WRITE_AUDIENCE),
    }
    forged = {
        **web,
        "X-User-Token": sign_user_token(
            "forged-" + USER_TOKEN_SECRET, "alice", audience=WRITE_AUDIENCE
        ),
    }
    mine, mine_too = event("rate", user_id="alice"), event("click", user_id="alice")
    refused = [event("rate", user_id="alice") for _ in range(3)]
    theirs = event("rate", user_id="bob")
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        r = http.post("/api/events", json=mine, headers=good)
        assert r.status_code == 202, r.text
        r = http.post("/api/events/batch", json=[mine_too], headers=good)
        assert r.status_code == 202 and r.json()["accepted"] == 1, r.text

        r = http.post("/api/events", json=refused[0], headers=forged)
        assert r.status_code == 401, r.text
        assert r.json()["detail"] == "invalid X-User-Token: bad signature"
        r = http.post("/api/events", json=refused[1], headers=web)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "X-User-Token"
        # all or nothing: alice's event goes nowhere with bob's in the same batch
        r = http.post("/api/events/batch", json=[refused[2], theirs], headers=good)
        assert r.status_code == 403, r.text
        assert (r.json()["index"], r.json()["event_id"]) == (1, theirs["event_id"])
        metrics = http.get("/metrics").text
    for reason in ("invalid_user_token", "missing_user_token", "user_mismatch"):
        assert f'cinepulse_gateway_auth_refusals_total{{reason="{reason}"}} 1.0' in metrics

    records = read_topics(kafka_settings, list(topics.USER_EVENT_TOPICS), expect=2)
    got = {json.loads(m.value())["event_id"] for m in records}
    assert got == {mine["event_id"], mine_too["event_id"]}
    assert {m.key() for m in records} == {b"alice"}


def test_movie_records_are_archived_to_raw_movies(
    archiver: ServiceProcess, kafka_settings: KafkaSettings, mongo_settings: MongoSettings
) -> None:
    producer = make_producer(kafka_settings)
    movie = {"id": 603, "title": "The Matrix", "genres": [{"id": 878, "name": "Science Fiction"}]}
    for _ in range(2):  # the same movie published twice: two records, two documents
        producer.produce(
            kafka_settings.topic(topics.MOVIE), key=b"603", value=json.dumps(movie).encode()
        )
    assert producer.flush(10) == 0
    docs = wait_for_docs(mongo_settings, 2, collection="movies")
    assert len(docs) == 2
    assert {d["movie_id"] for d in docs} == {603}
    assert all(d["record"] == movie and d["source"] == "kafka" for d in docs)
    assert len({d["_id"] for d in docs}) == 2
