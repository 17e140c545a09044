"""The gateway benchmark's run against the local stack: a topic prefix of its own, the bare
app and the gateway started side by side, every path's trials interleaved round by round,
then the topics deleted. The pieces it drives live in :mod:`.load`, :mod:`.ceilings` and
:mod:`.table`."""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.gateway.ceilings import kafka_trial
from bench.gateway.load import Load, batch_events, rate_event, topic_records, wait_ready
from bench.gateway.parameters import (
    BATCH_CONCURRENCY,
    BATCH_SIZE,
    PARTITIONS,
    ROUNDS,
    SINGLE_CONCURRENCY,
    STEADY_CONCURRENCY,
    STEADY_RATE,
)
from bench.gateway.table import gateway_table
from bench.loadgen import Trial, clean_env, free_port, hey_binary, serve
from bench.report import Table
from cinepulse_common import topics
from cinepulse_common.kafka import delete_topics, ensure_topics, make_admin
from cinepulse_common.settings import KafkaSettings
from cinepulse_devstack import Stack


def run(stack: Stack) -> Table:
    prefix = f"bench-{secrets.token_hex(4)}-"
    kafka = KafkaSettings(bootstrap_servers=stack.kafka.bootstrap, topic_prefix=prefix)
    user_topics = [kafka.topic(t) for t in topics.USER_EVENT_TOPICS]
    rating_topic = kafka.topic(topics.USER_RATING_LOG)
    key = secrets.token_urlsafe(24)
    broker_pid = stack.kafka.pid()
    load = Load(hey_binary(stack), {"X-Write-Key": key}, kafka, rating_topic, broker_pid)

    now = datetime.now(UTC)  # occurred_at: the rules allow 300 s of future skew, 400 days past
    single = json.dumps(rate_event("u-1042", now)).encode()
    batch_list = batch_events(now)
    batch = json.dumps(batch_list).encode()
    env = clean_env(
        stack.env()
        | {
            "CINEPULSE_KAFKA__TOPIC_PREFIX": prefix,
            "CINEPULSE_AUTH__KEYS": json.dumps({"bench": key}),
            # measured flat out: the default per-key limit (100 events/s) would cap it
            "CINEPULSE_RATE_LIMITS": json.dumps({"bench": "unlimited"}),
            # many users' events: a server key (a frontend key needs a user's token)
            "CINEPULSE_AUTH__WRITE_ROLES": json.dumps({"bench": "server"}),
            "CINEPULSE_LOG_LEVEL": "WARNING",
        }
    )
    bare_port, gw_port = free_port(), free_port()
    bare_cmd = [sys.executable, "-m", "uvicorn", "bench.gateway.ceilings:bare_app"]
    bare_cmd += ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    bare_cmd += ["--log-level", "warning", "--host", "127.0.0.1", "--port", str(bare_port)]
    gw_cmd = [sys.executable, "-m", "cinepulse_event_gateway"]
    gw_cmd += ["--host", "127.0.0.1", "--port", str(gw_port)]

    trials: dict[str, list[Trial]] = {"a": [], "b": [], "c": [], "d": [], "s": []}
    admin = make_admin(kafka)
    ensure_topics(admin, user_topics, partitions=PARTITIONS)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
            workdir = Path(tmp)
            single_file, batch_file = workdir / "single.json", workdir / "batch.json"
            single_file.write_bytes(single)
            batch_file.write_bytes(batch)
            try:
                with (
                    serve("bare", bare_cmd, bare_port, env, workdir) as bare,
                    serve("gateway", gw_cmd, gw_port, env, workdir) as gateway,
                ):
                    # up, and every body is valid (202; each batch event accepted)
                    wait_ready(bare, "/api/events", single, load.headers)
                    wait_ready(gateway, "/api/events", single, load.headers)
                    answer = wait_ready(gateway, "/api/events/batch", batch, load.headers)
                    assert json.loads(answer)["accepted"] == BATCH_SIZE, answer
                    load.acked_events = 1 + BATCH_SIZE
                    load.topic_growth = topic_records(kafka, rating_topic)

                    # interleaved, so drift (other load, GC, caches) hits every path alike
                    for _ in range(ROUNDS):
                        trials["a"].append(
                            load(
                                bare,
                                "/api/events",
                                single_file,
                                SINGLE_CONCURRENCY,
                                1,
                                kafka_checked=False,
                            )
                        )
                        trials["c"].append(
                            load(
                                gateway,
                                "/api/events",
                                single_file,
                                SINGLE_CONCURRENCY,
                                1,
                                kafka_checked=True,
                            )
                        )
                        trials["d"].append(
                            load(
                                gateway,
                                "/api/events/batch",
                                batch_file,
                                BATCH_CONCURRENCY,
                                BATCH_SIZE,
                                kafka_checked=True,
                            )
                        )
                        trials["b"].append(
                            kafka_trial(kafka.bootstrap_servers, rating_topic, batch_list)
                        )
                    # latency at a steady load below saturation (what a sized deployment
                    # sees), next to the saturated figures above
                    trials["s"].append(
                        load(
                            gateway,
                            "/api/events",
                            single_file,
                            STEADY_CONCURRENCY,
                            1,
                            kafka_checked=True,
                            qps=STEADY_RATE / STEADY_CONCURRENCY,
                        )
                    )
            finally:
                gateway_log = (workdir / "gateway.log").read_text(errors="replace")
    finally:
        delete_topics(admin, user_topics)

    table = gateway_table(trials, load.acked_events, load.topic_growth, gateway_log)
    if stack.kafka.pid() != broker_pid:
        table.notes.append(
            f"WARNING: the Kafka broker was restarted during the run (pid {broker_pid} -> "
            f"{stack.kafka.pid()}): some figures are not representative"
        )
    return table
