"""The Kafka doctor's verdicts on topic settings (no broker: the states are given)."""

from __future__ import annotations

import pytest

from cinepulse_common.kafka_doctor import (
    HOUR_MS,
    Finding,
    TopicState,
    evaluate,
    exit_code,
    render,
)

GOOD = {
    "min.insync.replicas": "2",
    "unclean.leader.election.enable": "false",
    "retention.ms": str(7 * 24 * HOUR_MS),
    "retention.bytes": "-1",
    "cleanup.policy": "delete",
}


def verdicts(config: dict[str, str], rf: int = 3, isr: int | None = None) -> dict[str, str]:
    state = TopicState("user_rating_log", [rf] * 3, [rf if isr is None else isr] * 3, config)
    return {f.check: f.status for f in evaluate(state, "user_rating_log")}


def test_a_well_configured_topic_is_all_ok() -> None:
    found = evaluate(TopicState("user_rating_log", [3] * 3, [3] * 3, GOOD), "user_rating_log")
    assert {f.status for f in found} == {"OK"}
    assert exit_code(found) == 0


@pytest.mark.parametrize(
    ("change", "rf", "check", "status"),
    [
        ({}, 1, "replication.factor", "FAIL"),
        ({}, 2, "replication.factor", "WARN"),
        ({"min.insync.replicas": "1"}, 3, "min.insync.replicas", "FAIL"),
        ({"min.insync.replicas": "3"}, 3, "min.insync.replicas", "WARN"),
        ({"min.insync.replicas": "4"}, 3, "min.insync.replicas", "FAIL"),
        ({"min.insync.replicas": "1"}, 1, "min.insync.replicas", "WARN"),
        ({"unclean.leader.election.enable": "true"}, 3, "unclean.leader.election.enable", "FAIL"),
        ({"retention.ms": str(2 * HOUR_MS)}, 3, "retention.ms", "FAIL"),
        ({"retention.ms": str(48 * HOUR_MS)}, 3, "retention.ms", "WARN"),
        ({"retention.ms": "-1"}, 3, "retention.ms", "OK"),
        ({"retention.bytes": "1073741824"}, 3, "retention.bytes", "WARN"),
        ({"cleanup.policy": "compact"}, 3, "cleanup.policy", "FAIL"),
        ({"cleanup.policy": "compact,delete"}, 3, "cleanup.policy", "FAIL"),
    ],
)
def test_each_bad_setting_is_named(
    change: dict[str, str], rf: int, check: str, status: str
) -> None:
    assert verdicts(GOOD | change, rf=rf)[check] == status


def test_compaction_of_the_movie_topic_is_only_a_warning() -> None:
    state = TopicState("p.movie", [3], [3], GOOD | {"cleanup.policy": "compact"})
    [policy] = [
        f for f in evaluate(state, "p.movie", base_name="movie") if f.check == "cleanup.policy"
    ]
    assert policy.status == "WARN"


def test_under_replicated_partitions_are_reported() -> None:
    assert verdicts(GOOD, rf=3, isr=2)["in-sync replicas"] == "WARN"


def test_a_missing_topic_fails() -> None:
    [f] = evaluate(None, "user_click_log")
    assert (f.check, f.status) == ("exists", "FAIL")


def test_the_table_names_each_row_and_counts() -> None:
    found = [
        Finding("t", "replication.factor", "1", "FAIL", "one copy"),
        Finding("t", "retention.ms", "168 h", "OK", ">= 168 h"),
    ]
    text = render(found)
    assert text.splitlines()[0].split() == ["TOPIC", "CHECK", "VALUE", "STATUS", "REASON"]
    assert "replication.factor  1      FAIL    one copy" in text
    assert text.splitlines()[-1].startswith("1 OK, 0 WARN, 1 FAIL")
    assert exit_code(found) == 1
