"""The HTTP load on the servers: the request bodies, the readiness check, and :class:`Load`,
which runs ``hey`` (:mod:`bench.loadgen`) against a server and, for the gateway, counts the
records its rating topic gained so the table can say every 202 reached Kafka."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from bench.gateway.parameters import BATCH_SIZE, PARTITIONS, TRIAL_S, WARMUP_S
from bench.loadgen import Server, Trial, hey
from cinepulse_common.kafka import make_consumer
from cinepulse_common.settings import KafkaSettings
from cinepulse_devstack.procs import tail

# --------------------------------------------------------------------------- request bodies


def rate_event(user_id: str, occurred_at: datetime) -> dict[str, Any]:
    """A valid rate event as a frontend sends it: no event_id, the gateway assigns one."""
    return {
        "event_type": "rate",
        "user_id": user_id,
        "movie_id": 603,
        "occurred_at": occurred_at.isoformat(),
        "payload": {"rating": 4.5},
    }


def batch_events(occurred_at: datetime) -> list[dict[str, Any]]:
    # distinct users, so the records spread over the partitions as real traffic does
    return [rate_event(f"u-{i}", occurred_at) for i in range(BATCH_SIZE)]


# --------------------------------------------------------------------------- readiness


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(  # noqa: S310 - a local http URL
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(server: Server, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """Until the server answers ``path`` with 202 (a check of the body too); its answer."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited at start-up:\n{tail(server.log)}")
        try:
            status, answer = post(server.url + path, body, headers)
        except (ConnectionError, urllib.error.URLError):
            time.sleep(0.2)
            continue
        if status != 202:
            raise RuntimeError(f"{server.name} answered {status} to {path}: {answer[:500]!r}")
        return answer
    raise RuntimeError(f"{server.name} did not answer within 60s:\n{tail(server.log)}")


# --------------------------------------------------------------------------- Kafka offsets


def topic_records(settings: KafkaSettings, topic: str) -> int:
    """Records in ``topic``: the sum of its partitions' high watermarks (it starts empty)."""
    consumer = make_consumer(settings, group_id=f"bench-watermarks-{uuid.uuid4().hex}")
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        )
    finally:
        consumer.close()


# --------------------------------------------------------------------------- the load


@dataclass
class Load:
    """Runs hey against a server; for the gateway, also checks Kafka got every 202."""

    hey: str
    headers: dict[str, str]
    kafka: KafkaSettings
    topic: str
    broker_pid: int | None
    acked_events: int = 0  # events hey saw answered 202 by the gateway (warm-ups included)
    topic_growth: int = 0  # records the topic gained over those same runs

    def __call__(
        self,
        server: Server,
        path: str,
        body: Path,
        concurrency: int,
        per_request: int,
        *,
        kafka_checked: bool,
        qps: float | None = None,
    ) -> Trial:
        before = topic_records(self.kafka, self.topic) if kafka_checked else 0

        def run(seconds: int, warm: Trial | None = None) -> Trial:
            return hey(
                self.hey,
                server,
                path,
                body,
                self.headers,
                seconds=seconds,
                concurrency=concurrency,
                per_request=per_request,
                broker_pid=self.broker_pid,
                qps=qps,
                sized_by=warm,
            )

        # the trial runs long enough for every percentile at the warm-up's rate (a batch
        # of 100 on a busy machine may answer only a few requests a second)
        warm = run(WARMUP_S)
        trial = run(TRIAL_S, warm)
        if kafka_checked:
            self.acked_events += warm.ok + trial.ok
            self.topic_growth += topic_records(self.kafka, self.topic) - before
        # a failed answer in the warm-up counts too
        trial.failures = {
            k: warm.failures.get(k, 0) + trial.failures.get(k, 0)
            for k in warm.failures | trial.failures
        }
        return trial
