"""The fallback as an operator uses it, on the live PostgreSQL and MongoDB-protocol server: one
run per outage, extended window after window (atomically; never a promoted run, never over a
gap), and ``promote --all-pending`` (a dry run first, then ``--apply``; a second call
promotes nothing and says so)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from cinepulse_common.rules import active_rules
from cinepulse_common.settings import MongoSettings, PostgresSettings
from tests.factories import event
from tests.integration.test_fallback import (
    ARRIVED,
    FACTS,
    _archive,
    _cli,
    _count,
    _one,
    _settings,
)

pytestmark = pytest.mark.integration

T0 = ARRIVED - timedelta(hours=1)
T1 = ARRIVED
T2 = ARRIVED + timedelta(hours=1)


def _window(pg: PostgresSettings, mongo: MongoSettings, start: Any, end: Any, **kw: Any) -> Any:
    from cinepulse_pandas_fallback.job import run_window

    return run_window(_settings(pg, mongo), active_rules(), start, end, progress=None, **kw)


def _events(n: int, user: str) -> list[dict[str, Any]]:
    return [event(t, user_id=f"{user}{i}") for i, t in enumerate(["rate", "watch", "click"] * n)]


def _facts(pg: PostgresSettings, run_id: str) -> int:
    return sum(_count(pg, f"fallback.{t}", "run_id = %s", run_id) for t in FACTS)


def test_one_run_per_outage_extended_window_after_window(
    pg_settings: PostgresSettings, mongo_settings: MongoSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cinepulse_pandas_fallback import job
    from cinepulse_pandas_fallback.job import NotExtendable, RunFailed
    from cinepulse_pandas_fallback.runs import promote

    pg, mongo = pg_settings, mongo_settings
    _archive(mongo, _events(2, "a"), received_at=T0 + timedelta(minutes=30))
    first = _window(pg, mongo, T0, T1)
    assert first.events_read == 6 and _facts(pg, first.run_id) == 6

    # the outage lasts: the next window (overlapping the first by 5 min) extends the run
    _archive(mongo, _events(3, "b"), received_at=T1 + timedelta(minutes=30), start=100)
    more = _window(pg, mongo, T1 - timedelta(minutes=5), T2, extend=first.run_id)
    assert more.run_id == first.run_id and more.events_read == 9
    runs = _one(pg, "SELECT count(*), min(window_start), max(window_end) FROM fallback.runs")
    assert runs == (1, T0, T2)
    status, events_read, rows = _one(
        pg, "SELECT status, events_read, rows_written FROM fallback.runs"
    )
    assert (status, events_read) == ("succeeded", 15)
    assert rows["fact_rating"] == 5 and rows["fact_watch"] == 5 and rows["fact_click"] == 5
    assert _facts(pg, first.run_id) == 15

    # an extension that fails rolls back whole: the run is as it was
    real_load = job.load_events

    def failing_load(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected: PostgreSQL went away")

    _archive(mongo, _events(1, "c"), received_at=T2 + timedelta(minutes=10), start=200)
    monkeypatch.setattr(job, "load_events", failing_load)
    with pytest.raises(RunFailed):
        _window(pg, mongo, T2, T2 + timedelta(hours=1), extend=first.run_id)
    monkeypatch.setattr(job, "load_events", real_load)
    assert _one(pg, "SELECT status, window_end, events_read FROM fallback.runs") == (
        "succeeded",
        T2,
        15,
    )
    assert _facts(pg, first.run_id) == 15

    # no gap after the run's end, nor a window it already covers
    with pytest.raises(NotExtendable, match="gap"):
        _window(pg, mongo, T2 + timedelta(minutes=1), T2 + timedelta(hours=1), extend=first.run_id)
    with pytest.raises(NotExtendable, match="already covers"):
        _window(pg, mongo, T0, T1, extend=first.run_id)
    with pytest.raises(NotExtendable, match="no fallback run"):
        _window(pg, mongo, T2, T2 + timedelta(hours=1), extend="fallback-nope")

    # promoted: the run is closed; the outage's next window is a new run
    promote(pg, first.run_id, by="ada")
    assert _count(pg, "fact_rating") == 5
    with pytest.raises(NotExtendable, match="promoted run is closed"):
        _window(pg, mongo, T2, T2 + timedelta(hours=1), extend=first.run_id)
    assert _count(pg, "fallback.runs") == 1


def test_promote_all_pending_dry_run_then_apply_then_nothing(
    pg_settings: PostgresSettings, mongo_settings: MongoSettings
) -> None:
    dsn, url = pg_settings.dsn.get_secret_value(), mongo_settings.url.get_secret_value()
    db = mongo_settings.database
    _archive(mongo_settings, _events(2, "a"), received_at=T0 + timedelta(minutes=30))
    _archive(mongo_settings, _events(1, "b"), received_at=T1 + timedelta(minutes=30), start=50)
    runs = []
    for start, end in ((T0, T1), (T1, T2)):
        done = _cli(dsn, url, db, "run", "--from", start.isoformat(), "--to", end.isoformat())
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1])["run_id"])
    # an extension through the command line: --extend '' is a new run, as the guard passes it
    extend = _cli(
        dsn,
        url,
        db,
        "run",
        "--from",
        T2.isoformat(),
        "--to",
        (T2 + timedelta(minutes=5)).isoformat(),
        "--extend",
        runs[1],
    )
    assert extend.returncode == 0, extend.stderr
    assert json.loads(extend.stdout.strip().splitlines()[-1])["run_id"] == runs[1]
    later = (T2 + timedelta(minutes=10)).isoformat()
    gap = _cli(dsn, url, db, "run", "--from", T2.isoformat(), "--to", later, "--extend", runs[0])
    assert gap.returncode == 3 and "gap" in gap.stderr

    # the dry run (the default): lists both, counts their rows, changes nothing
    dry = _cli(dsn, url, db, "promote", "--all-pending", "--by", "ada")
    assert dry.returncode == 0, dry.stderr
    planned = [json.loads(line) for line in dry.stdout.splitlines()]
    assert [p["run_id"] for p in planned] == runs and all(p["dry_run"] for p in planned)
    assert planned[0]["rows"]["fact_rating"] == {"inserted": 2, "present": 0}
    assert "would promote 2 run(s)" in dry.stderr and "--apply" in dry.stderr
    assert _count(pg_settings, "fact_rating") == 0
    assert _count(pg_settings, "fallback.promotions") == 0

    applied = _cli(dsn, url, db, "promote", "--all-pending", "--apply", "--by", "ada")
    assert applied.returncode == 0, applied.stderr
    promoted = [json.loads(line) for line in applied.stdout.splitlines()]
    assert [p["run_id"] for p in promoted] == runs and not any(p["dry_run"] for p in promoted)
    assert _count(pg_settings, "fact_rating") == 3 and _count(pg_settings, "fact_watch") == 3
    assert _one(pg_settings, "SELECT array_agg(DISTINCT status) FROM fallback.runs") == (
        ["promoted"],
    )
    assert _count(pg_settings, "fallback.promotions", "promoted_by = 'ada'") == 2

    # idempotent: nothing pending, exit 0 and a message; nothing recorded
    again = _cli(dsn, url, db, "promote", "--all-pending", "--apply")
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert json.loads(again.stdout) == {"pending": 0, "dry_run": False, "promoted": []}
    assert _count(pg_settings, "fallback.promotions") == 2

    # arguments: run ids or --all-pending, --apply only with --all-pending
    for args in (
        ("promote",),
        ("promote", runs[0], "--all-pending"),
        ("promote", runs[0], "--apply"),
    ):
        assert _cli(dsn, url, db, *args).returncode == 2
    # several run ids at once (promoting a promoted one again inserts nothing)
    both = _cli(dsn, url, db, "promote", *runs, "--by", "grace")
    assert both.returncode == 0 and len(both.stdout.splitlines()) == 2
