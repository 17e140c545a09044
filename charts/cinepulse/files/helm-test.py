"""helm test: the release answers, and an event goes through the gateway's code into the
release's Kafka, without writing anything production reads.

1. The deployed gateway and api are ready, and each takes the helm-test key: the gateway
   refuses an empty event with 422 (authenticated, validated, nothing published) and 401
   without the key; the api reads a user that does not exist (404, not 401/403).
2. A gateway of its own, in this pod (the same image and Kafka settings as the deployed one),
   with a key made here and ``CINEPULSE_KAFKA__TOPIC_PREFIX`` = ``helm-test-<run>-``: one
   event through it (202: Kafka acknowledged it), read back from the prefixed topic.
3. The prefixed topics it created are deleted, with those of an earlier run that died before
   its cleanup once an hour old (a run going on beside it keeps its own). The key needs the
   right to create and delete ``helm-test-*`` topics (a managed Kafka's ACLs); a cleanup
   that fails is reported and fails the test, never hiding an earlier failure.

Why a gateway of its own: the deployed one publishes only to the production topics (its
prefix is process-wide), where Spark models every event and the archiver keeps it; a test
event there could never be cleaned up. The price: the test no longer waits for Spark and the
api to show its event (the cluster e2e checks that flow on its own data).

Runs in the gateway's image: the standard library, its packages (cinepulse_common,
confluent_kafka, pydantic) and no HTTP client package (an import of httpx failed there)."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from pydantic_settings import BaseSettings, SettingsConfigDict

from cinepulse_common import topics
from cinepulse_common.kafka import delete_topics, ensure_topics, make_admin, make_consumer
from cinepulse_common.settings import KafkaSettings

GATEWAY, API = os.environ["GATEWAY_URL"], os.environ["API_URL"]
WRITE_KEYS = os.environ.get("WRITE_KEYS_DIR", "/var/run/secrets/cinepulse/write-keys")
API_KEYS = os.environ.get("API_KEYS_DIR", "/var/run/secrets/cinepulse/api-keys")
DEADLINE_S = float(os.environ.get("DEADLINE_S", "120"))
#: every topic of a helm test starts so, then the run's start (Unix seconds) and its id;
#: nothing else may (a run deletes its own, and earlier runs' once they are STALE_S old)
PREFIX_ROOT = "helm-test-"
STALE_S = 3600
LOCAL_PORT = int(os.environ.get("LOCAL_GATEWAY_PORT", "18080"))


class _Env(BaseSettings):
    """The release's Kafka block (CINEPULSE_KAFKA__*), as the gateway reads it."""

    model_config = SettingsConfigDict(env_prefix="CINEPULSE_", env_nested_delimiter="__")
    kafka: KafkaSettings


def first_key(folder: str) -> str | None:
    """The key of the client named helm-test, else the first one in the mounted Secret."""
    path = pathlib.Path(folder)
    if not path.is_dir():
        return None
    files = sorted(f for f in path.glob("*") if f.is_file() and not f.name.startswith("."))
    named = [f for f in files if f.name == "helm-test"]
    return (named or files)[0].read_text().strip() if files else None


def call(url: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, str]:
    """(status, body) of a GET, or of a POST when ``body`` is given; an HTTP error status is
    an answer, a connection error is status 0."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url!r}")
    # the scheme is checked just above (S310 warns of file: and custom schemes)
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


def expect(what: str, status: int, text: str, *wanted: int) -> None:
    print(what, status, text[:200], flush=True)
    if status not in wanted:
        sys.exit(f"{what}: {status}, expected {' or '.join(map(str, wanted))}")


def check_release() -> None:
    """The deployed gateway and api answer and take their keys; nothing is written."""
    json_type = {"Content-Type": "application/json"}
    expect("gateway /readyz", *call(f"{GATEWAY}/readyz", {}), 200)
    write_key = first_key(WRITE_KEYS)
    if write_key:  # no key: the gateway's auth is off (never in production)
        expect("gateway without a key", *call(f"{GATEWAY}/api/events", json_type, b"{}"), 401)
    keyed = json_type | ({"X-Write-Key": write_key} if write_key else {})
    expect("gateway, an empty event", *call(f"{GATEWAY}/api/events", keyed, b"{}"), 422)
    expect("api /readyz", *call(f"{API}/readyz", {}), 200)
    api_key = first_key(API_KEYS)
    nobody = f"{API}/api/user_stats/{PREFIX_ROOT}nobody-{uuid.uuid4().hex[:8]}"
    expect("api, a user nobody is", *call(nobody, {"X-API-Key": api_key} if api_key else {}), 404)


def roundtrip(kafka: KafkaSettings, prefix: str) -> None:
    """One event through a gateway of this pod into ``prefix``'s topic, read back."""
    keys = pathlib.Path(tempfile.mkdtemp(prefix="helm-test-keys-"))
    key = secrets.token_hex(32)
    (keys / "helm-test").write_text(key)
    env = os.environ | {
        "CINEPULSE_KAFKA__TOPIC_PREFIX": prefix,
        "CINEPULSE_AUTH__ENABLED": "true",
        "CINEPULSE_AUTH__KEYS_PATH": str(keys),
        "CINEPULSE_AUTH__WRITE_ROLES": json.dumps({"helm-test": "server"}),
        "CINEPULSE_METRICS_PORT": "0",
    }
    cmd = [sys.executable, "-m", "cinepulse_event_gateway", "--host", "127.0.0.1"]
    gateway = subprocess.Popen([*cmd, "--port", str(LOCAL_PORT)], env=env)
    local = f"http://127.0.0.1:{LOCAL_PORT}"
    try:
        deadline = time.monotonic() + DEADLINE_S
        while call(f"{local}/readyz", {})[0] != 200:
            if gateway.poll() is not None or time.monotonic() > deadline:
                sys.exit("the test's own gateway did not start")
            time.sleep(1)
        event_id = str(uuid.uuid4())
        event = {
            "event_id": event_id,
            "event_type": "rate",
            "user_id": f"{PREFIX_ROOT}{uuid.uuid4().hex[:12]}",
            "movie_id": 603,
            "occurred_at": datetime.now(UTC).isoformat(),
            "payload": {"rating": 4.5},
        }
        headers = {"Content-Type": "application/json", "X-Write-Key": key}
        answer = call(f"{local}/api/events", headers, json.dumps(event).encode())
        expect("its own gateway, one event", *answer, 202)
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
    read_back(kafka, kafka.topic(topics.USER_RATING_LOG), event_id)


def read_back(kafka: KafkaSettings, topic: str, event_id: str) -> None:
    # assigned, never subscribed: no consumer group is left behind
    consumer = make_consumer(kafka, group_id=f"{topic}-reader")
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error() and event_id in (msg.value() or b"").decode():
                print(f"read back from {topic}", flush=True)
                return
        sys.exit(f"the event was not in {topic} within {DEADLINE_S:.0f}s")
    finally:
        consumer.close()


def stale(topic: str, now: float) -> bool:
    """A topic of an earlier run (``helm-test-<unix seconds>-<run>-...``) older than
    STALE_S: one that died before its cleanup. A run still going is never one."""
    stamp = topic.removeprefix(PREFIX_ROOT).split("-", 1)[0]
    return stamp.isdigit() and now - int(stamp) > STALE_S


def clean_up(admin: Any, prefix: str) -> bool:
    """Delete this run's topics and stale ones of earlier runs; False (and why, on stderr)
    when that failed, e.g. a managed Kafka that does not let this key delete topics."""
    try:
        now = time.time()
        names = admin.list_topics(timeout=30).topics
        left = [
            t
            for t in names
            if t.startswith(prefix) or (t.startswith(PREFIX_ROOT) and stale(t, now))
        ]
        delete_topics(admin, left)
    except Exception as exc:
        print(f"the test topics were not deleted: {type(exc).__name__}: {exc}", file=sys.stderr)
        return False
    print("deleted", sorted(left), flush=True)
    return True


def main() -> None:
    check_release()
    prefix = f"{PREFIX_ROOT}{int(time.time())}-{uuid.uuid4().hex[:8]}-"
    kafka = _Env().kafka.model_copy(update={"topic_prefix": prefix})
    admin = make_admin(kafka)
    cleaned = False
    try:
        # one partition, the broker's default replication (-1): the gateway publishes a
        # rating there; a missing topic would be refused, not created, by a managed Kafka
        ensure_topics(admin, [kafka.topic(topics.USER_RATING_LOG)], 1, -1)
        roundtrip(kafka, prefix)
    finally:
        cleaned = clean_up(admin, prefix)
    if not cleaned:
        sys.exit("helm test passed, but its topics are left (see above)")


if __name__ == "__main__":
    main()
