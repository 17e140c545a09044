"""``cinepulse-stack doctor`` against the local stack's real Kafka: its single broker gives
replication 1 (FAIL), and a topic created here with bad settings is named check by check."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import NewTopic

from cinepulse_common import topics
from cinepulse_common.kafka import delete_topics, ensure_topics, make_admin
from cinepulse_common.kafka_doctor import HOUR_MS, check
from cinepulse_common.settings import KafkaSettings
from cinepulse_devstack import Stack, cli

pytestmark = pytest.mark.integration

BAD = {
    "min.insync.replicas": "2",  # more than the one replica: every acks=all write refused
    "unclean.leader.election.enable": "true",
    "retention.ms": str(2 * HOUR_MS),
    "cleanup.policy": "compact",
}


@pytest.fixture
def kafka(stack: Stack) -> Iterator[KafkaSettings]:
    k = KafkaSettings(
        bootstrap_servers=stack.kafka.bootstrap, topic_prefix=f"doctor.{uuid.uuid4().hex[:8]}."
    )
    admin = make_admin(k)
    rating = k.topic(topics.USER_RATING_LOG)
    others = [k.topic(t) for t in topics.ALL_TOPICS if t not in (topics.USER_RATING_LOG,)]
    # the click topic is left out: a missing topic is a FAIL of its own
    others.remove(k.topic(topics.USER_CLICK_LOG))
    ensure_topics(admin, others, partitions=1)
    for fut in admin.create_topics(
        [NewTopic(rating, num_partitions=1, replication_factor=1, config=BAD)]
    ).values():
        fut.result(30)
    yield k
    delete_topics(admin, [*others, rating])


def test_the_doctor_names_every_bad_setting(kafka: KafkaSettings) -> None:
    found = {(f.topic, f.check): f for f in check(kafka)}
    rating = kafka.topic(topics.USER_RATING_LOG)
    assert found[("(cluster)", "brokers")].status == "FAIL"  # the local stack: one broker
    assert found[(rating, "replication.factor")].status == "FAIL"
    assert found[(rating, "min.insync.replicas")].status == "FAIL"
    assert "NOT_ENOUGH_REPLICAS" in found[(rating, "min.insync.replicas")].reason
    assert found[(rating, "unclean.leader.election.enable")].status == "FAIL"
    assert found[(rating, "retention.ms")].status == "FAIL"
    assert found[(rating, "retention.ms")].value == "2 h"
    assert found[(rating, "cleanup.policy")].status == "FAIL"
    assert found[(kafka.topic(topics.USER_CLICK_LOG), "exists")].status == "FAIL"
    watch = kafka.topic(topics.USER_WATCH_LOG)  # the broker's defaults
    assert found[(watch, "unclean.leader.election.enable")].status == "OK"
    assert found[(watch, "retention.ms")].status == "OK"
    assert found[(watch, "replication.factor")].status == "FAIL"


def test_the_stack_command_prints_the_table_and_exits_1(
    kafka: KafkaSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["doctor", "--topic-prefix", kafka.topic_prefix]) == 1
    out = capsys.readouterr().out
    rating = kafka.topic(topics.USER_RATING_LOG)
    line = next(ln for ln in out.splitlines() if ln.startswith(rating) and "unclean.leader" in ln)
    assert "FAIL" in line and "out-of-sync replica" in line
    assert "FAIL: Kafka's settings break the durability promise" in out.splitlines()[-1]


def test_the_module_reads_the_services_kafka_settings(
    kafka: KafkaSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m cinepulse_common.kafka_doctor`` in a pod: CINEPULSE_KAFKA__* as is."""
    from cinepulse_common import kafka_doctor

    monkeypatch.setenv("CINEPULSE_KAFKA__BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("CINEPULSE_KAFKA__TOPIC_PREFIX", kafka.topic_prefix)
    assert kafka_doctor.main([]) == 1
    out = capsys.readouterr().out
    assert kafka.topic(topics.USER_RATING_LOG) in out
    # an unreachable broker is one line and exit 2, not a traceback
    assert kafka_doctor.main(["--bootstrap", "127.0.0.1:1"]) == 2
    assert "cannot check Kafka" in capsys.readouterr().err
