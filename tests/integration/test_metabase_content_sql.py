"""Every question of the chart's Metabase content (charts/cinepulse/files/metabase/
content.json) run against the real PostgreSQL as Metabase would run it: logged in as a LOGIN
role made by the hook's own code (``prepare-database``), a member of cinepulse_readonly only,
with exactly the connection details ``provision`` sends to Metabase. Metabase itself is not
run (it cannot be obtained here: no image registry, not on Maven Central); what the hook
sends to it is checked against a stand-in in tests/unit/test_metabase_content.py.

The warehouse holds the data of ``test_api``, moved in time so that its newest day is today:
every question, the windowed ones too, then returns rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr

from cinepulse_common.settings import PostgresSettings
from cinepulse_devstack import chart
from cinepulse_metabase import (
    MetabaseSettings,
    MetabaseSetupSettings,
    datasource_for,
    details_conninfo,
    load_content,
    prepare_database,
)
from tests.integration.test_api import TODAY, fill_warehouse

pytestmark = pytest.mark.integration

CONTENT = load_content(chart.chart_dir() / "files" / "metabase" / "content.json")
AGGREGATES = ("agg_movie_daily", "agg_daily_activity", "agg_emotion_daily")
#: test_api's data has no agg_daily_activity: (day, event type, events, users, movies)
ACTIVITY = [
    (TODAY, "watch", 4, 1, 2),
    (TODAY, "rate", 32, 3, 3),
    (TODAY, "comment", 1, 1, 1),
    (TODAY, "click", 9, 2, 3),
    (TODAY - timedelta(days=3), "watch", 1, 1, 1),
]


def _move_to_today(dsn: str, days: int) -> None:
    """Shift every aggregate's day by ``days`` (as the owner; a copy, then back, so that no
    primary key collides midway)."""
    with psycopg.connect(dsn) as conn:
        for table in AGGREGATES:
            t = sql.Identifier(table)
            conn.execute(sql.SQL("CREATE TEMP TABLE shifted AS SELECT * FROM {}").format(t))
            conn.execute(
                "UPDATE shifted SET date_key = to_char(to_date(date_key::text, 'YYYYMMDD') + %s,"
                " 'YYYYMMDD')::integer",
                (days,),
            )
            conn.execute(sql.SQL("DELETE FROM {}").format(t))
            conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM shifted").format(t))
            conn.execute("DROP TABLE shifted")


@pytest.fixture
def reader(pg_settings: PostgresSettings) -> Iterator[psycopg.Connection[Any]]:
    """A session as Metabase's reader on a warehouse whose newest day is today."""
    dsn = pg_settings.dsn.get_secret_value()
    fill_warehouse(pg_settings)
    with psycopg.connect(dsn, autocommit=True) as owner:
        for day, event_type, events, users, movies in ACTIVITY:
            owner.execute(
                "INSERT INTO agg_daily_activity (date_key, event_type, events, users, movies,"
                " source_flag) VALUES (%s, %s, %s, %s, %s, 'spark')",
                (int(day.strftime("%Y%m%d")), event_type, events, users, movies),
            )
        row = owner.execute("SELECT current_date").fetchone()
        assert row is not None
        today: date = row[0]
    _move_to_today(dsn, (today - TODAY).days)
    role = f"t_mbsql_{uuid.uuid4().hex[:10]}"
    settings = MetabaseSetupSettings(
        postgres=pg_settings,
        metabase=MetabaseSettings(reader_role=role, reader_password=SecretStr(uuid.uuid4().hex)),
    )
    try:
        prepare_database(settings)  # the hook's first step: the role, then a check
        with psycopg.connect(**details_conninfo(datasource_for(settings)), autocommit=True) as c:
            yield c
    finally:
        with psycopg.connect(dsn, autocommit=True) as owner:
            owner.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_every_question_runs_as_the_read_only_member(reader: psycopg.Connection[Any]) -> None:
    user = reader.execute("SELECT current_user").fetchone()
    assert user is not None and user[0].startswith("t_mbsql_")
    assert reader.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
    member_of = reader.execute(
        "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
        " WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
    ).fetchall()
    assert member_of == [("cinepulse_readonly",)]
    results: dict[str, list[tuple[Any, ...]]] = {}
    failures = []
    for card in CONTENT.cards:
        try:
            cur = reader.execute(card.sql)
        except psycopg.Error as exc:
            failures.append(f"{card.key}: {type(exc).__name__}: {exc}")
            continue
        columns = [c.name for c in cur.description or []]
        rows = cur.fetchall()
        if columns != card.columns:
            failures.append(f"{card.key}: columns {columns}, the file says {card.columns}")
        elif not rows:
            failures.append(f"{card.key}: no rows")
        results[card.key] = rows
    assert not failures, "\n".join(failures)

    # a few answers, checked against the views read directly
    users = reader.execute("SELECT watches, ratings FROM analytics.user_activity").fetchall()
    assert results["watch_rate_funnel"] == [
        ("Users seen", len(users)),
        ("Watched a movie", sum(1 for w, _ in users if w > 0)),
        ("Watched and rated", sum(1 for w, r in users if w > 0 and r > 0)),
    ]
    assert results["watch_rate_funnel"][-1][1] > 0
    # test_api's week: Beta first (20 ratings at 4.5; Alpha's 2 at 5.0 pulled below)
    assert results["top_movies_7d"][0][:3] == (1, "Beta", 20)
    assert dict(results["events_by_type_30d"]) == {"rate": 32, "click": 9, "watch": 5, "comment": 1}
    freshness = {source: behind for source, _, behind in results["freshness_by_source"]}
    assert freshness["daily_activity"] == freshness["movie_daily"] == 0
    per_day = results["events_per_day_14d"]
    assert len(per_day) == 14 and per_day[-1][1] == 46 and per_day[-4][1] == 1
    assert sum(events for _, events in per_day) == 47  # the other days: 0, not missing
