"""Time windows of scheduled runs, as Jinja macros of the DAGs.

Cron schedules here are Airflow 3's ``CronTriggerTimetable`` (a run's data interval is its
trigger time, ``data_interval_end``), so each DAG derives its window from that instant. Both
functions are pure: consecutive runs get contiguous windows, and a rerun or backfill of a
run gets the same window again.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def previous_day(at: datetime) -> str:
    """The UTC day before ``at`` (the day a nightly run aggregates), ``YYYY-MM-DD``."""
    day: date = at.astimezone(UTC).date() - timedelta(days=1)
    return day.isoformat()


def settled_window(at: datetime, settle_s: int, length_s: int) -> tuple[str, str]:
    """The newest whole window of ``length_s`` seconds (aligned to the epoch, so hours are
    clock hours) that ended at least ``settle_s`` seconds before ``at``: ``(from, to)``,
    ISO 8601 UTC, half open."""
    ready = int((at.astimezone(UTC) - timedelta(seconds=settle_s)).timestamp())
    end = datetime.fromtimestamp(ready - ready % length_s, UTC)
    return (end - timedelta(seconds=length_s)).isoformat(), end.isoformat()
