"""The archive agent's continuity check (pure): which offsets the consumer skipped."""

from __future__ import annotations

import pytest

from cinepulse_archiver.continuity import (
    Continuity,
    TopicRecreated,
    check_not_recreated,
    gap_before,
)

TP = ("user_rating_log", 2)


def test_a_skip_ahead_is_a_gap_and_a_redelivery_is_not() -> None:
    c = Continuity()
    assert not c.knows(TP)
    c.expect(TP, 203)
    assert [c.observe(TP, o) for o in range(203, 208)] == [None] * 5
    # 208..210 never delivered (skipped around a rebalance): 211 reveals them
    assert c.observe(TP, 211) == (208, 211)
    assert c.observe(TP, 212) is None
    # faust delivering again what was already seen (a seek back) is no gap
    assert c.observe(TP, 209) is None
    assert c.observe(TP, 213) is None


def test_the_first_offset_sets_the_expectation_when_nothing_is_known() -> None:
    c = Continuity()
    assert c.observe(TP, 500) is None
    assert c.observe(TP, 502) == (501, 502)


def test_only_partitions_still_owned_keep_their_expectation() -> None:
    c = Continuity()
    other = ("user_click_log", 0)
    c.expect(TP, 10)
    c.expect(other, 20)
    c.retain([TP])
    assert c.knows(TP) and not c.knows(other)


def test_the_gap_before_a_first_seen_offset_comes_from_the_partitions_position() -> None:
    assert gap_before(0, None, 1000) is None  # the partition's first record
    assert gap_before(70, None, 1000) is None  # no position saved: nothing to say
    assert gap_before(70, 70, 1000) is None  # archived up to it
    assert gap_before(70, 90, 1000) is None  # a redelivery (faust sought back)
    assert gap_before(70, 50, 1000) == (50, 70)  # 50..69 committed, never archived
    assert gap_before(5000, 10, 1000) == (4000, 5000)  # at most the window is read again


def test_a_position_beyond_the_partitions_end_is_a_recreated_topic() -> None:
    check_not_recreated(TP, 120, 500)  # archived up to 120 of 500: fine
    check_not_recreated(TP, 500, 500)  # everything archived
    check_not_recreated(TP, None, 3)  # no position: nothing to say
    check_not_recreated(TP, 120, None)  # the end not known yet: nothing to say
    with pytest.raises(TopicRecreated, match=r"user_rating_log\[2\] holds offsets up to 3"):
        check_not_recreated(TP, 120, 3)  # offsets went back: a new topic
