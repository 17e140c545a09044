"""The questions and dashboards ``provision`` keeps in Metabase (the chart's
files/metabase/content.json, :mod:`cinepulse_metabase.content`), against the stand-in
:class:`~tests.unit.metabase_standin.FakeMetabase` (NOT Metabase, which cannot run here; it
refuses bodies Metabase's schemas refuse). The JSON sent is checked here; every card's SQL is
run against the real PostgreSQL as a read-only member in
tests/integration/test_metabase_content_sql.py.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cinepulse_metabase as metabase
from cinepulse_devstack import chart
from cinepulse_metabase import (
    ConfigError,
    Content,
    ContentCard,
    MetabaseClient,
    load_content,
    provision,
)
from tests.unit.metabase_standin import TABS_NEED_DASHCARD_TABS, FakeMetabase
from tests.unit.test_metabase import ADMIN_PASSWORD, _env, _quiet, _settings

CONTENT_FILE = chart.chart_dir() / "files" / "metabase" / "content.json"
CONTENT_WRITES = ("/api/collection", "/api/card", "/api/dashboard")


@pytest.fixture
def fake() -> Iterator[FakeMetabase]:
    yield from FakeMetabase().serve()


@pytest.fixture
def raw() -> dict[str, Any]:
    return json.loads(CONTENT_FILE.read_text())


def _write(tmp_path: Path, raw: dict[str, Any], name: str = "content.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(raw))
    return path


def _run(fake: FakeMetabase, path: Path = CONTENT_FILE) -> dict[str, Any]:
    summary = provision(_settings(fake.url, content_path=str(path)), progress=_quiet)
    return summary["content"]


def _content_writes(fake: FakeMetabase) -> list[tuple[str, str]]:
    return [(m, p) for m, p in fake.writes() if p.startswith(CONTENT_WRITES)]


def test_the_charts_content_covers_what_an_analyst_expects() -> None:
    content = load_content(CONTENT_FILE)
    assert content.version >= 1 and content.collection.name == "Cinepulse"
    for card in content.cards:
        # only the analytics schema: every qualified name read is analytics.<view or function>
        assert set(re.findall(r"\b(\w+)\.\w+\s*\(?", card.sql)) <= {"analytics", "d", "a", "s", "u"}
        assert "analytics." in card.sql and ";" not in card.sql, card.key
        assert card.description, card.key
    displays = {c.key: c.display for c in content.cards}
    assert displays["watch_rate_funnel"] == "funnel"
    sql = {c.key: c.sql for c in content.cards}
    assert (
        "bayesian_top_movies" in sql["top_movies_7d"] and "event_type" in sql["events_by_type_30d"]
    )
    assert "emotion_daily" in sql["emotion_trends_daily"]
    names = {d.name for d in content.dashboards}
    assert names == {
        "Cinepulse: top movies",
        "Cinepulse: audience activity",
        "Cinepulse: emotion trends",
        "Cinepulse: pipeline freshness",
    }
    shown = {dc.card for d in content.dashboards for dc in d.dashcards}
    assert shown == {c.key for c in content.cards}  # every question is on a dashboard


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda r: r["dashboards"][0]["dashcards"].append(
                {**r["dashboards"][0]["dashcards"][0], "card": "nope"}
            ),
            "unknown card 'nope'",
        ),
        (lambda r: r["cards"][1].update(name=r["cards"][0]["name"]), "two cards have the name"),
        (lambda r: r["cards"][0].update(description="  "), "cards.0.description"),
        (lambda r: r["cards"][0].pop("sql"), "cards.0.sql: Field required"),
        (
            lambda r: r["dashboards"][0]["dashcards"][0].update(col=20),
            "col + size_x must be at most 24",
        ),
        (lambda r: r.pop("version"), "version"),
        (lambda r: r["cards"][0].update(extra=1), "cards.0.extra"),
    ],
)
def test_a_bad_content_file_is_named_and_explained(
    tmp_path: Path, raw: dict[str, Any], edit: Any, message: str
) -> None:
    edit(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_content(path)
    assert str(path) in str(info.value)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match=r"broken\.json is not valid Metabase content"):
        load_content(tmp_path / "broken.json")
    with pytest.raises(ConfigError, match="CONTENT_PATH: cannot read"):
        load_content(tmp_path / "missing.json")


def test_a_fresh_metabase_gets_the_collection_the_questions_and_the_dashboards(
    fake: FakeMetabase,
) -> None:
    summary = provision(_settings(fake.url, content_path=str(CONTENT_FILE)), progress=_quiet)
    content, db_id = load_content(CONTENT_FILE), summary["database_id"]
    done = summary["content"]
    assert done["content_version"] == content.version and done["collection_action"] == "created"
    assert done["cards"] == {"created": len(content.cards), "updated": 0, "unchanged": 0}
    assert done["dashboards"] == {"created": len(content.dashboards), "updated": 0, "unchanged": 0}
    ((coll_id, coll),) = fake.collections.items()
    assert coll["name"] == "Cinepulse" and coll["description"] and done["collection_id"] == coll_id

    # every card: the file's SQL as a native query against the warehouse datasource
    sent = {b["name"]: b for m, p, b in fake.calls if (m, p) == ("POST", "/api/card")}
    assert len(sent) == len(content.cards) == len(fake.cards)
    for card in content.cards:
        body = sent[card.name]
        assert body["dataset_query"] == {
            "database": db_id,
            "type": "native",
            "native": {"query": card.sql, "template-tags": {}},
        }
        assert body["display"] == card.display and body["collection_id"] == coll_id
        assert body["visualization_settings"] == card.visualization_settings
        assert body["description"] == card.description and body["type"] == "question"
        assert "columns" not in body and "key" not in body
        assert fake.cards[done["card_ids"][card.key]]["name"] == card.name

    # every dashboard: made in the collection, then its dashcards, all new (negative ids),
    # each showing the card just created for its key
    by_name = {d["name"]: (i, d) for i, d in fake.dashboards.items()}
    for dash in content.dashboards:
        dash_id, made = by_name[dash.name]
        assert made["collection_id"] == coll_id and made["description"] == dash.description
        (layout,) = [b for m, p, b in fake.calls if (m, p) == ("PUT", f"/api/dashboard/{dash_id}")]
        assert [d["id"] for d in layout["dashcards"]] == list(
            range(-1, -len(dash.dashcards) - 1, -1)
        )
        assert [
            (d["card_id"], d["row"], d["col"], d["size_x"], d["size_y"])
            for d in layout["dashcards"]
        ] == [
            (done["card_ids"][dc.card], dc.row, dc.col, dc.size_x, dc.size_y)
            for dc in dash.dashcards
        ]
        assert [d["card_id"] for d in made["dashcards"]] == [
            done["card_ids"][dc.card] for dc in dash.dashcards
        ]


@pytest.mark.parametrize("mbql5", [False, True])
def test_a_second_run_changes_nothing(fake: FakeMetabase, mbql5: bool) -> None:
    fake.mbql5_queries = mbql5  # recent versions answer the stored query as MBQL 5
    first = _run(fake)
    state = json.dumps([fake.collections, fake.cards, fake.dashboards], sort_keys=True)
    fake.calls.clear()
    again = _run(fake)
    assert _content_writes(fake) == []  # no POST, no PUT: reads only
    assert again["collection_action"] == "found" and again["card_ids"] == first["card_ids"]
    assert again["cards"]["unchanged"] == len(first["card_ids"])
    assert again["dashboards"] == {"created": 0, "updated": 0, "unchanged": 4}
    assert json.dumps([fake.collections, fake.cards, fake.dashboards], sort_keys=True) == state


def test_an_edited_file_updates_in_place(
    fake: FakeMetabase, tmp_path: Path, raw: dict[str, Any]
) -> None:
    first = _run(fake)
    (dash_id,) = [i for i, d in fake.dashboards.items() if d["name"] == "Cinepulse: top movies"]
    before = {d["card_id"]: d["id"] for d in fake.dashboards[dash_id]["dashcards"]}
    edited = copy.deepcopy(raw)
    edited["version"] += 1
    edited["cards"][0]["sql"] += "\n-- edited"
    edited["cards"][0]["visualization_settings"] = {"table.row_index": True}
    top = edited["dashboards"][0]
    top["dashcards"] = [dc for dc in top["dashcards"] if dc["card"] != "genres_30d"]
    top["dashcards"][0]["size_y"] = 10
    edited["dashboards"][0] = top
    fake.calls.clear()
    again = _run(fake, _write(tmp_path, edited))
    assert again["card_ids"] == first["card_ids"]  # the same cards, no new one
    assert again["cards"] == {"created": 0, "updated": 1, "unchanged": len(raw["cards"]) - 1}
    assert again["dashboards"] == {"created": 0, "updated": 1, "unchanged": 3}
    card_id = first["card_ids"][raw["cards"][0]["key"]]
    assert _content_writes(fake) == [
        ("PUT", f"/api/card/{card_id}"),
        ("PUT", f"/api/dashboard/{dash_id}"),
    ]
    assert fake.cards[card_id]["dataset_query"]["native"]["query"].endswith("-- edited")
    after = fake.dashboards[dash_id]["dashcards"]
    genres = first["card_ids"]["genres_30d"]
    assert genres not in {d["card_id"] for d in after}  # removed from the dashboard
    assert genres in fake.cards  # the question itself stays
    # the dashcards kept are the same ones (their ids), one of them resized
    assert {d["card_id"]: d["id"] for d in after} == {
        k: v for k, v in before.items() if k != genres
    }
    assert after[0]["size_y"] == 10
    fake.calls.clear()
    _run(fake, _write(tmp_path, edited))
    assert _content_writes(fake) == []


def test_a_dashboard_given_tabs_in_the_ui_keeps_them(
    fake: FakeMetabase, tmp_path: Path, raw: dict[str, Any]
) -> None:
    first = _run(fake)
    (dash_id,) = [i for i, d in fake.dashboards.items() if d["name"] == "Cinepulse: top movies"]
    url, genres = f"/api/dashboard/{dash_id}", first["card_ids"]["genres_30d"]
    # an analyst adds tabs as Metabase's UI does: every card on the first, then one moved
    client = _logged_in(fake)
    shown = client.call("GET", url).body["dashcards"]
    keys = ("id", "card_id", "row", "col", "size_x", "size_y")
    layout = [{k: d[k] for k in keys} for d in shown]
    tabs = [{"id": -1, "name": "Overview"}, {"id": -2, "name": "Genres"}]
    refused = client.call("PUT", url, {"tabs": tabs, "dashcards": layout})
    assert (refused.status, refused.body) == (400, TABS_NEED_DASHCARD_TABS)
    on_tabs = [d | {"dashboard_tab_id": -2 if d["card_id"] == genres else -1} for d in layout]
    assert client.call("PUT", url, {"tabs": tabs, "dashcards": on_tabs}).status == 200
    tabs_before = copy.deepcopy(fake.dashboards[dash_id]["tabs"])
    overview, genres_tab = (t["id"] for t in tabs_before)
    # what the provisioning sent before (no tab on its dashcards) is refused now
    refused = client.call("PUT", url, {"dashcards": layout})
    assert (refused.status, refused.body) == (400, TABS_NEED_DASHCARD_TABS)

    fake.calls.clear()
    assert _run(fake)["dashboards"]["unchanged"] == 4  # the layout the file says: no write
    assert _content_writes(fake) == []

    # the file changes that dashboard: one card resized, one shown there too
    edited = copy.deepcopy(raw)
    top = edited["dashboards"][0]
    top["dashcards"][0]["size_y"] = 10
    top["dashcards"].append(
        {"card": "events_by_type_30d", "row": 14, "col": 0, "size_x": 24, "size_y": 6}
    )
    fake.calls.clear()
    again = _run(fake, _write(tmp_path, edited))
    assert again["dashboards"] == {"created": 0, "updated": 1, "unchanged": 3}
    ((_, _, body),) = [c for c in fake.calls if c[:2] == ("PUT", url)]
    assert body["tabs"] == client.call("GET", url).body["tabs"] == tabs_before  # sent unchanged
    dash = fake.dashboards[dash_id]
    assert dash["tabs"] == tabs_before  # kept: the same ids, names and order
    tab_of = {d["card_id"]: d["dashboard_tab_id"] for d in dash["dashcards"]}
    new_card = first["card_ids"]["events_by_type_30d"]
    assert tab_of.pop(genres) == genres_tab  # kept on the tab the analyst moved it to
    assert tab_of.pop(new_card) == overview  # a new one: on the first tab
    assert set(tab_of.values()) == {overview} and len(tab_of) == 3
    kept = {d["card_id"]: d["id"] for d in shown}
    assert {d["card_id"]: d["id"] for d in dash["dashcards"] if d["card_id"] != new_card} == kept
    fake.calls.clear()
    _run(fake, _write(tmp_path, edited))
    assert _content_writes(fake) == []


def test_only_a_top_level_shared_collection_is_reused(fake: FakeMetabase) -> None:
    fake.collections[900] = {  # an admin's personal collection, and an archived one
        "name": "Cinepulse",
        "description": None,
        "location": "/",
        "personal_owner_id": 1,
        "archived": False,
    }
    fake.collections[901] = {
        "name": "Cinepulse",
        "description": None,
        "location": "/",
        "personal_owner_id": None,
        "archived": True,
    }
    fake.collections[902] = {
        "name": "Cinepulse",
        "description": None,
        "location": "/5/",
        "personal_owner_id": None,
        "archived": False,
    }
    made = _run(fake)
    assert made["collection_action"] == "created" and made["collection_id"] not in (900, 901, 902)
    assert _run(fake)["collection_id"] == made["collection_id"]


def _logged_in(fake: FakeMetabase) -> MetabaseClient:
    provision(_settings(fake.url), progress=_quiet)
    client = MetabaseClient(fake.url)
    answer = client.call(
        "POST",
        "/api/session",
        {"username": "admin@cinepulse.example.com", "password": ADMIN_PASSWORD},
    )
    client.session = answer.body["id"]
    return client


def test_the_stand_in_refuses_what_metabases_schemas_refuse(fake: FakeMetabase) -> None:
    client = _logged_in(fake)
    (db_id,) = fake.databases
    coll = client.call("POST", "/api/collection", {"name": "x"}).body["id"]
    assert client.call("POST", "/api/collection", {"description": "no name"}).status == 400
    query = {"database": db_id, "type": "native", "native": {"query": "SELECT 1"}}
    card = {"name": "q", "dataset_query": query, "display": "table", "visualization_settings": {}}
    for missing in ("name", "dataset_query", "display", "visualization_settings"):
        answer = client.call("POST", "/api/card", {k: v for k, v in card.items() if k != missing})
        assert answer.status == 400 and missing in answer.body["errors"], missing
    for key, bad in (
        ("description", ""),
        ("display", " "),
        ("collection_id", "1"),
        ("type", "chart"),
        ("visualization_settings", []),
    ):
        answer = client.call("POST", "/api/card", card | {key: bad})
        assert answer.status == 400 and key in answer.body["errors"], key
    assert (
        client.call("POST", "/api/card", card | {"dataset_query": query | {"database": 999}}).status
        == 400
    )
    made = client.call("POST", "/api/card", card | {"collection_id": coll})
    assert made.status == 200
    assert client.call("PUT", f"/api/card/{made.body['id']}", {"name": ""}).status == 400
    assert client.call("POST", "/api/dashboard", {"description": "no name"}).status == 400
    dash = client.call("POST", "/api/dashboard", {"name": "d", "collection_id": coll}).body["id"]
    dashcard: dict[str, Any] = {
        "id": -1,
        "card_id": made.body["id"],
        "row": 0,
        "col": 0,
        "size_x": 4,
        "size_y": 4,
    }
    bad_dashcards: list[dict[str, Any]] = [
        {"size_x": 0},
        {"row": -1},
        {"id": "new"},
        {"size_y": None},
    ]
    for wrong in bad_dashcards:
        answer = client.call("PUT", f"/api/dashboard/{dash}", {"dashcards": [dashcard | wrong]})
        assert answer.status == 400 and "dashcards" in answer.body["errors"], wrong
    twice = {"dashcards": [dashcard, dashcard | {"row": 4}]}
    assert client.call("PUT", f"/api/dashboard/{dash}", twice).status == 400
    unknown = {"dashcards": [dashcard | {"card_id": 12345}]}
    assert client.call("PUT", f"/api/dashboard/{dash}", unknown).status == 404
    assert client.call("PUT", f"/api/dashboard/{dash}", {"dashcards": [dashcard]}).status == 200


def test_a_refused_card_fails_the_command_clearly(
    fake: FakeMetabase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good = load_content(CONTENT_FILE)
    # what the file's checks forbid, made anyway, to see Metabase's (the stand-in's) refusal
    bad_card = ContentCard.model_construct(**(dict(good.cards[0]) | {"display": ""}))
    bad = Content.model_construct(**(dict(good) | {"cards": [bad_card, *good.cards[1:]]}))
    monkeypatch.setattr("cinepulse_metabase.client.load_content", lambda _: bad)
    _env(monkeypatch, fake.url, CINEPULSE_METABASE__CONTENT_PATH=str(CONTENT_FILE))
    assert metabase.main(["provision"]) == metabase.EXIT_REFUSED
    out, err = capsys.readouterr()
    assert out == ""
    assert f"refused to create the card {good.cards[0].name!r}: HTTP 400" in err
    assert "display" in err and "non-blank" in err
    assert fake.dashboards == {}  # stopped at the first refusal


def test_the_command_with_content_and_a_bad_file(
    fake: FakeMetabase,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    _env(monkeypatch, fake.url, CINEPULSE_METABASE__CONTENT_PATH=str(CONTENT_FILE))
    assert metabase.main(["provision"]) == metabase.EXIT_OK
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["content"]["cards"]["created"] == len(load_content(CONTENT_FILE).cards)
    (tmp_path / "bad.json").write_text('{"version": 0}')
    monkeypatch.setenv("CINEPULSE_METABASE__CONTENT_PATH", str(tmp_path / "bad.json"))
    fake.calls.clear()
    assert metabase.main(["provision"]) == metabase.EXIT_USAGE
    assert "bad.json is not valid Metabase content" in capsys.readouterr().err
    assert fake.calls == []  # refused before Metabase was touched
