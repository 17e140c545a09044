"""The archiver creates its missing source topics before it subscribes (on a fresh install
it starts before the first event creates them; found on the real node, where it then
archived nothing for minutes). Against the real local Kafka."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from cinepulse_archiver.__main__ import ensure_source_topics, source_topic_partitions
from cinepulse_archiver.app import create_app
from cinepulse_archiver.settings import ArchiverSettings
from cinepulse_common import topics
from cinepulse_common.kafka import delete_topics, make_admin
from cinepulse_common.settings import KafkaSettings, MongoSettings
from cinepulse_devstack import Stack


def _settings(stack: Stack, prefix: str, create: bool) -> ArchiverSettings:
    return ArchiverSettings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka.bootstrap, topic_prefix=prefix),
        mongo=MongoSettings(url=stack.mongo.url),  # type: ignore[arg-type]
        create_source_topics=create,
        source_partitions=4,
    )


def test_missing_source_topics_are_created_once(stack: Stack) -> None:
    prefix = f"fresh{uuid.uuid4().hex[:8]}."
    settings = _settings(stack, prefix, create=True)
    admin = make_admin(settings.kafka)
    names = [settings.kafka.topic(t) for t in topics.ALL_TOPICS]
    try:
        assert not set(names) & set(admin.list_topics(timeout=10).topics)
        ensure_source_topics(settings)
        deadline = time.monotonic() + 30  # the broker's metadata follows the creation
        while True:
            meta = admin.list_topics(timeout=10).topics
            complete = all(n in meta and len(meta[n].partitions) == 4 for n in names)
            if complete or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert all(n in meta for n in names), sorted(set(names) - set(meta))
        assert {len(meta[n].partitions) for n in names} == {4}
        ensure_source_topics(settings)  # a restart: nothing to create, no error
        # the counters' changelog topics get as many partitions (faust requires it; the
        # real node's counters crash-looped on 6 source partitions against 3)
        assert source_topic_partitions(_settings(stack, prefix, create=False)) == 4
        app = create_app(settings.model_copy(update={"source_partitions": 4}))
        assert app.conf.topic_partitions == 4
    finally:
        delete_topics(admin, names)


def test_nothing_is_created_when_topics_are_managed_elsewhere(stack: Stack) -> None:
    prefix = f"managed{uuid.uuid4().hex[:8]}."
    settings = _settings(stack, prefix, create=False)
    ensure_source_topics(settings)
    existing = make_admin(settings.kafka).list_topics(timeout=10).topics
    assert not [t for t in existing if t.startswith(prefix)]


def test_a_broker_that_never_answers_stops_the_start_after_the_wait() -> None:
    """On a fresh install the broker starts alongside: the archiver waits for it (the real
    node saw one restart per install before), and gives up after its wait, saying so."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = ArchiverSettings(
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"),
        mongo=MongoSettings(url="mongodb://127.0.0.1:1"),  # type: ignore[arg-type]
        kafka_startup_wait_s=1,
    )
    t0 = time.monotonic()
    with pytest.raises(SystemExit, match="did not answer within 1s"):
        ensure_source_topics(settings)
    assert time.monotonic() - t0 < 60
