"""The analysts' questions and dashboards, kept as versioned JSON (the chart's
``files/metabase/content.json``), and their provisioning through Metabase's API: the
collection found or created, then every card and dashboard created, updated in place, or
left alone when Metabase already holds what the file says (see :mod:`cinepulse_metabase`
for the API calls and where in Metabase's source they were read).

Identity: the collection by its name (top level, not personal, not archived); a card or a
dashboard by its name among the collection's items. Renaming one in the file therefore makes
a new one and leaves the old one in the collection (archive it in Metabase). A card's
``columns`` are the columns its SQL returns: not sent to Metabase, the integration test runs
every card's SQL as a member of cinepulse_readonly and checks them.

Tabs: a dashboard an analyst gave tabs in the UI keeps them. ``update-dashboard`` in
src/metabase/dashboards/api.clj answers 400 "This dashboard has tab, makes sure every card has
a tab" when a ``PUT`` with ``dashcards`` leaves one without ``dashboard_tab_id`` on a dashboard
with tabs, and deletes the tabs the ``tabs`` sent leave out (``do-update-tabs!``,
src/metabase/dashboards/models/dashboard_tab.clj). So the ``tabs`` of the ``GET`` are sent
back unchanged (UpdatedDashboardTab: ``id``, ``name``) and every dashcard gets a tab: the
one it was on, the first tab for a new one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from cinepulse_metabase.settings import ConfigError, MetabaseError

if TYPE_CHECKING:
    from cinepulse_metabase.client import Answer, MetabaseClient

#: Metabase's dashboard grid is 24 columns wide
GRID_WIDTH = 24
Text = Annotated[str, StringConstraints(pattern=r"\S")]  # non-blank, as Metabase's schemas
Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContentCollection(_Strict):
    name: Text
    description: Text | None = None


class ContentCard(_Strict):
    """A native SQL question over the analytics schema."""

    key: Key
    name: Text
    description: Text | None = None
    #: Metabase's visualisation: table, line, bar, row, area, pie, funnel, scalar, ...
    display: Text
    visualization_settings: dict[str, Any] = Field(default_factory=dict)
    sql: Text
    columns: list[Text] = Field(min_length=1)


class ContentDashcard(_Strict):
    card: Key
    row: int = Field(ge=0)
    col: int = Field(ge=0, lt=GRID_WIDTH)
    size_x: int = Field(ge=1, le=GRID_WIDTH)
    size_y: int = Field(ge=1)

    @model_validator(mode="after")
    def _fits(self) -> ContentDashcard:
        if self.col + self.size_x > GRID_WIDTH:
            raise ValueError(f"col + size_x must be at most {GRID_WIDTH}")
        return self


class ContentDashboard(_Strict):
    key: Key
    name: Text
    description: Text | None = None
    dashcards: list[ContentDashcard] = Field(min_length=1)


class Content(_Strict):
    version: int = Field(ge=1)
    collection: ContentCollection
    cards: list[ContentCard] = Field(min_length=1)
    dashboards: list[ContentDashboard] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Content:
        for kind, items in (("card", self.cards), ("dashboard", self.dashboards)):
            for attr in ("key", "name"):
                values = [getattr(i, attr) for i in items]
                if dupes := sorted({v for v in values if values.count(v) > 1}):
                    raise ValueError(f"two {kind}s have the {attr} {dupes[0]!r}")
        keys = {c.key for c in self.cards}
        for dash in self.dashboards:
            cards = [dc.card for dc in dash.dashcards]
            if unknown := sorted(set(cards) - keys):
                raise ValueError(f"dashboard {dash.key!r} shows unknown card {unknown[0]!r}")
            if len(set(cards)) != len(cards):
                raise ValueError(f"dashboard {dash.key!r} shows a card twice")
        return self


def load_content(path: Path) -> Content:
    """The content file, checked; :class:`ConfigError` naming the file and what is wrong."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return Content.model_validate(raw)
    except OSError as exc:
        raise ConfigError(f"CINEPULSE_METABASE__CONTENT_PATH: cannot read {path}: {exc}") from exc
    except ValueError as exc:  # json's and pydantic's errors
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top)"
            reason = f"{exc.error_count()} error(s), first at {where}: {first['msg']}"
        else:
            reason = str(exc)
        raise ConfigError(f"{path} is not valid Metabase content: {reason}") from exc


# ------------------------------------------------------------------------------ the payloads


def card_payload(card: ContentCard, database_id: int, collection_id: int) -> dict[str, Any]:
    """``POST /api/card`` (and ``PUT``): a native query against the warehouse datasource."""
    return {
        "name": card.name,
        "description": card.description,
        "type": "question",
        "display": card.display,
        "visualization_settings": card.visualization_settings,
        "collection_id": collection_id,
        "dataset_query": {
            "database": database_id,
            "type": "native",
            "native": {"query": card.sql, "template-tags": {}},
        },
    }


def native_of(dataset_query: Any) -> tuple[Any, Any]:
    """(database id, SQL) of a stored card's query: the legacy shape (``native.query``) or
    MBQL 5's (``stages[0].native``), whichever Metabase answers with."""
    if not isinstance(dataset_query, dict):
        return None, None
    native, stages = dataset_query.get("native"), dataset_query.get("stages")
    if isinstance(native, dict):
        return dataset_query.get("database"), native.get("query")
    if isinstance(stages, list) and stages and isinstance(stages[0], dict):
        return dataset_query.get("database"), stages[0].get("native")
    return dataset_query.get("database"), None


def _same_card(current: Any, want: dict[str, Any]) -> bool:
    if not isinstance(current, dict) or current.get("archived"):
        return False
    keys = ("name", "description", "display", "visualization_settings", "collection_id")
    return all(current.get(k) == want[k] for k in keys) and native_of(
        current.get("dataset_query")
    ) == (want["dataset_query"]["database"], want["dataset_query"]["native"]["query"])


def _layout(dashcards: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (d.get("card_id"), d.get("row"), d.get("col"), d.get("size_x"), d.get("size_y"))
        for d in (dashcards or [])
        if isinstance(d, dict)
    )


def _dashcards_and_tabs(
    wanted: list[tuple[int, int, int, int, int]], current: Any
) -> dict[str, Any]:
    """``dashcards`` (and ``tabs``, when the dashboard has some) of ``PUT /api/dashboard/:id``:
    a dashcard already showing a card keeps its id and its tab, a new one gets a negative id
    and the first tab; the tabs go back as the ``GET`` showed them, in their order."""
    current = current if isinstance(current, dict) else {}
    tabs = [t for t in current.get("tabs") or [] if isinstance(t, dict) and "id" in t]
    tabs.sort(key=lambda t: t["position"] if isinstance(t.get("position"), int) else 0)
    tab_ids = [t["id"] for t in tabs]
    have = [d for d in current.get("dashcards") or [] if isinstance(d, dict)]
    kept = {d.get("card_id"): d for d in reversed(have)}
    dashcards: list[dict[str, Any]] = []
    for n, (card_id, row, col, size_x, size_y) in enumerate(wanted, start=1):
        old = kept.get(card_id, {})
        dashcard: dict[str, Any] = {
            "id": old.get("id") or -n,
            "card_id": card_id,
            "row": row,
            "col": col,
            "size_x": size_x,
            "size_y": size_y,
            "parameter_mappings": [],
            "series": [],
            "visualization_settings": {},
        }
        if tab_ids:
            tab = old.get("dashboard_tab_id")
            dashcard["dashboard_tab_id"] = tab if tab in tab_ids else tab_ids[0]
        dashcards.append(dashcard)
    return {"dashcards": dashcards, "tabs": tabs} if tabs else {"dashcards": dashcards}


# ------------------------------------------------------------------------------ provisioning


def _refused(answer: Answer, what: str) -> Any:
    from cinepulse_metabase.client import _why  # client imports this module

    if answer.status != 200:
        raise MetabaseError(f"Metabase refused {what}: {_why(answer)}")
    return answer.body


def _with_id(body: Any, what: str) -> int:
    if not isinstance(body, dict) or not isinstance(body.get("id"), int):
        raise MetabaseError(f"Metabase answered {what} without an id: {str(body)[:200]}")
    return int(body["id"])


def _collection(client: MetabaseClient, spec: ContentCollection) -> tuple[int, str]:
    listing = _refused(client.call("GET", "/api/collection"), "to list its collections")
    rows = listing.get("data", []) if isinstance(listing, dict) else (listing or [])
    same = sorted(
        int(r["id"])
        for r in rows
        if isinstance(r, dict)
        and isinstance(r.get("id"), int)  # the root collection's id is "root"
        and r.get("name") == spec.name
        and not r.get("archived")
        and r.get("personal_owner_id") is None
        and r.get("location", "/") == "/"
    )
    if same:
        return same[0], "found"
    body = {"name": spec.name, "description": spec.description}
    answer = client.call("POST", "/api/collection", body)
    what = f"the collection {spec.name!r}"
    return _with_id(_refused(answer, f"to create {what}"), what), "created"


def provision_content(client: MetabaseClient, database_id: int, content: Content) -> dict[str, Any]:
    """Find or create the collection, then create, update or leave each card and dashboard;
    a second run with the same content makes no change (only reads)."""
    collection_id, collection_action = _collection(client, content.collection)
    items = _refused(
        client.call("GET", f"/api/collection/{collection_id}/items?models=card&models=dashboard"),
        f"to list the items of collection {collection_id}",
    )
    existing: dict[tuple[str, str], int] = {}
    for item in items.get("data", []) if isinstance(items, dict) else (items or []):
        key = (str(item.get("model")), str(item.get("name")))
        existing[key] = min(existing.get(key, item["id"]), item["id"])
    counts: dict[str, dict[str, int]] = {
        kind: {"created": 0, "updated": 0, "unchanged": 0} for kind in ("cards", "dashboards")
    }

    card_ids: dict[str, int] = {}
    for card in content.cards:
        want = card_payload(card, database_id, collection_id)
        what = f"the card {card.name!r}"
        card_id = existing.get(("card", card.name))
        if card_id is None:
            body = _refused(client.call("POST", "/api/card", want), f"to create {what}")
            card_id, action = _with_id(body, what), "created"
        elif _same_card(
            _refused(client.call("GET", f"/api/card/{card_id}"), f"to show {what}"), want
        ):
            action = "unchanged"
        else:
            _refused(client.call("PUT", f"/api/card/{card_id}", want), f"to update {what}")
            action = "updated"
        card_ids[card.key] = card_id
        counts["cards"][action] += 1

    for dash in content.dashboards:
        what = f"the dashboard {dash.name!r}"
        meta = {"name": dash.name, "description": dash.description, "collection_id": collection_id}
        dash_id = existing.get(("dashboard", dash.name))
        if dash_id is None:
            body = _refused(client.call("POST", "/api/dashboard", meta), f"to create {what}")
            dash_id, action, current = _with_id(body, what), "created", {}
        else:
            current = _refused(client.call("GET", f"/api/dashboard/{dash_id}"), f"to show {what}")
            action = "updated"
        wanted = [(card_ids[d.card], d.row, d.col, d.size_x, d.size_y) for d in dash.dashcards]
        have = current.get("dashcards") if isinstance(current, dict) else None
        if (
            action == "updated"
            and all(current.get(k) == v for k, v in meta.items())
            and _layout(have) == sorted(wanted)
        ):
            counts["dashboards"]["unchanged"] += 1
            continue
        body = meta | _dashcards_and_tabs(wanted, current)
        _refused(client.call("PUT", f"/api/dashboard/{dash_id}", body), f"to lay out {what}")
        counts["dashboards"][action] += 1

    return {
        "content_version": content.version,
        "collection": content.collection.name,
        "collection_id": collection_id,
        "collection_action": collection_action,
        **counts,
        "card_ids": card_ids,
    }
