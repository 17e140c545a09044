"""streaming_guard's decision: healthy, unhealthy and forced cases, the window the fallback
covers, and the branch the DAG takes from it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cinepulse_airflow import config, streaming
from conftest import LivePrometheus

SETTINGS = config.load()["streaming"]
NOW = datetime(2026, 11, 28, 12, 0, 30, 123456, tzinfo=UTC)
END = "2026-11-28T12:00:30+00:00"


def signals(**kw: Any) -> streaming.Signals:
    base: dict[str, Any] = {
        "now": NOW,
        "forced": False,
        "heartbeat_at": NOW - timedelta(seconds=20),
        "newest_spark_fact_at": NOW - timedelta(minutes=2),
        "last_fallback_end": None,
    }
    return streaming.Signals(**{**base, **kw})


def test_healthy_heartbeat_skips() -> None:
    d = streaming.decide(signals(), SETTINGS)
    assert (d.run_fallback, d.healthy, d.forced) == (False, True, False)
    assert d.window_start is None and "heartbeat 20 s old" in d.reason


def test_idle_stream_with_a_fresh_heartbeat_is_healthy() -> None:
    """No traffic for hours: old facts, but the query's heartbeat still ticks."""
    d = streaming.decide(signals(newest_spark_fact_at=NOW - timedelta(hours=5)), SETTINGS)
    assert (d.run_fallback, d.healthy) == (False, True)


def test_stale_heartbeat_runs_from_spark_coverage_less_the_margin() -> None:
    last_fact = NOW - timedelta(minutes=40)
    d = streaming.decide(
        signals(heartbeat_at=NOW - timedelta(minutes=10), newest_spark_fact_at=last_fact), SETTINGS
    )
    assert (d.run_fallback, d.healthy, d.forced) == (True, False, False)
    assert d.reason.startswith("unhealthy: Spark heartbeat 600 s old")
    margin = timedelta(seconds=SETTINGS["coverage_overlap_s"])
    assert d.window_start == (last_fact - margin).replace(microsecond=0).isoformat()
    assert d.window_end == END


def test_unhealthy_starts_where_the_last_fallback_run_ended() -> None:
    fallback_end = NOW - timedelta(minutes=5)
    d = streaming.decide(
        signals(
            heartbeat_at=NOW - timedelta(hours=2),
            newest_spark_fact_at=NOW - timedelta(hours=2),
            last_fallback_end=fallback_end,
        ),
        SETTINGS,
    )
    assert d.run_fallback
    assert (d.window_start, d.window_end) == ("2026-11-28T11:55:30+00:00", END)


def test_without_a_heartbeat_the_newest_fact_decides() -> None:
    fresh = streaming.decide(signals(heartbeat_at=None), SETTINGS)
    assert (fresh.run_fallback, fresh.healthy) == (False, True)
    assert "newest Spark fact 120 s old" in fresh.reason
    stale = streaming.decide(
        signals(heartbeat_at=None, newest_spark_fact_at=NOW - timedelta(hours=1)), SETTINGS
    )
    assert (stale.run_fallback, stale.healthy) == (True, False)


def test_nothing_known_covers_the_longest_window() -> None:
    d = streaming.decide(signals(heartbeat_at=None, newest_spark_fact_at=None), SETTINGS)
    assert (d.run_fallback, d.healthy) == (True, False)
    assert "no Spark heartbeat and no Spark fact" in d.reason
    longest = timedelta(seconds=SETTINGS["max_window_s"])
    assert d.window_start == (NOW - longest).replace(microsecond=0).isoformat()


def test_a_long_outage_is_caught_up_one_bounded_window_at_a_time() -> None:
    d = streaming.decide(
        signals(heartbeat_at=NOW - timedelta(days=3), newest_spark_fact_at=NOW - timedelta(days=3)),
        SETTINGS,
    )
    start = datetime.fromisoformat(str(d.window_start))
    assert NOW.replace(microsecond=0) - start == timedelta(seconds=SETTINGS["max_window_s"])


def test_forced_runs_even_when_healthy() -> None:
    d = streaming.decide(signals(forced=True), SETTINGS)
    assert (d.run_fallback, d.healthy, d.forced) == (True, True, True)
    assert d.reason == "forced by the Variable use_pandas_fallback"
    assert d.window_end == END


def test_nothing_uncovered_skips_even_when_forced() -> None:
    d = streaming.decide(
        signals(forced=True, last_fallback_end=NOW + timedelta(seconds=1)), SETTINGS
    )
    assert d.run_fallback is False and "nothing uncovered" in d.reason


def _outage(status: str = "succeeded", ends: timedelta = timedelta(minutes=5)) -> Any:
    end = (NOW - ends).replace(microsecond=0)
    return streaming.OutageRun("fallback-outage", status, end)


def _down(**kw: Any) -> streaming.Signals:
    return signals(
        heartbeat_at=NOW - timedelta(hours=2), newest_spark_fact_at=NOW - timedelta(hours=2), **kw
    )


def test_the_outage_run_is_extended_while_the_outage_lasts() -> None:
    run = _outage()
    d = streaming.decide(_down(last_fallback_end=run.window_end, outage_run=run), SETTINGS)
    assert d.run_fallback and d.extend_run_id == "fallback-outage"
    assert d.window_start == run.window_end.isoformat() and d.window_end == END
    assert "extending the outage's run fallback-outage" in d.reason
    forced = streaming.decide(
        signals(forced=True, last_fallback_end=run.window_end, outage_run=run), SETTINGS
    )
    assert forced.extend_run_id == "fallback-outage"


@pytest.mark.parametrize(
    ("why", "kw"),
    [
        ("no outage run (the last check was healthy)", {"outage_run": None}),
        ("promoted meanwhile: closed", {"outage_run": _outage("promoted")}),
        ("failed", {"outage_run": _outage("failed")}),
        # a newer fallback run ended later (e.g. run by hand): no gap after the outage's run
        ("not where the window starts", {"outage_run": _outage(ends=timedelta(minutes=9))}),
    ],
)
def test_a_new_run_when_the_outage_run_cannot_be_extended(why: str, kw: dict[str, Any]) -> None:
    last_end = (NOW - timedelta(minutes=5)).replace(microsecond=0)
    d = streaming.decide(_down(last_fallback_end=last_end, **kw), SETTINGS)
    assert d.run_fallback and d.extend_run_id is None, why
    assert d.window_start == last_end.isoformat()


def test_spark_coverage_past_the_outage_run_starts_a_new_run() -> None:
    run = _outage(ends=timedelta(hours=3))
    d = streaming.decide(_down(last_fallback_end=run.window_end, outage_run=run), SETTINGS)
    assert d.run_fallback and d.extend_run_id is None


@pytest.mark.parametrize(
    ("value", "forced"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        (" yes ", True),
        ("false", False),
        ("", False),
        ("0", False),
    ],
)
def test_the_variable_is_read_leniently(value: str, forced: bool) -> None:
    assert streaming.is_true(value) is forced


@pytest.mark.parametrize(
    ("decision", "branch"),
    [
        (streaming.Decision(False, True, False, "healthy"), "streaming_ok"),
        (streaming.Decision(True, False, False, "unhealthy", "a", "b"), "run_fallback"),
        (streaming.Decision(True, True, True, "forced", "a", "b"), "run_fallback"),
    ],
)
def test_branch(dagbag: Any, decision: streaming.Decision, branch: str) -> None:
    choose = dagbag.dags["streaming_guard"].get_task("choose").python_callable
    assert choose(decision.as_dict()) == branch
    assert branch in dagbag.dags["streaming_guard"].get_task("choose").downstream_task_ids


@pytest.mark.integration
def test_heartbeat_from_prometheus(prometheus: LivePrometheus) -> None:
    # the newest heartbeat any driver reports: ours, an hour ahead of any real one
    ahead = datetime.fromtimestamp(round(time.time()) + 3600.25, UTC)
    prometheus.set_heartbeat(ahead.timestamp())
    assert streaming.heartbeat(prometheus.url + "/") == ahead
    assert streaming.heartbeat("") is None  # no Prometheus configured
