"""FakeMetabase: an in-process stand-in for the part of Metabase's HTTP API the hook calls.

It is NOT Metabase (Metabase cannot run on these machines: no image registry, not on Maven
Central). It implements only the calls ``cinepulse_metabase`` makes, with the behaviour
the client relies on as read in Metabase's source (listed in that package's docstring):
``/api/health`` (503 until ready), ``/api/session/properties``, ``/api/setup`` (first admin
only, 403 afterwards), ``/api/session`` (401 on a wrong password), ``/api/database`` (list,
create, update; 400 when it "cannot connect"), ``/api/setting/:key``, ``/api/collection``
(list, create, items), ``/api/card`` (create, show, update) and ``/api/dashboard`` (create,
show, update with ``dashcards`` and ``tabs``), and 401 for any other call without a valid
``X-Metabase-Session``. Bodies are checked against the malli schemas of those endpoints
(required keys, types, non-blank strings, the dashcards' ids): a refused body answers 400 with
Metabase's ``{"errors": {key: message}, "specific-errors": {...}}``, so a client sending
anything less than Metabase requires fails here too. A dashboard with tabs (or a ``PUT`` sending
``tabs``) refuses ``dashcards`` lacking a ``dashboard_tab_id`` with Metabase's 400 "This
dashboard has tab, makes sure every card has a tab" (``update-dashboard`` in
src/metabase/dashboards/api.clj: older versions check the dashboard's tabs, newer ones the
tabs sent, filling in the only one when one is sent; the stand-in refuses in both cases), and
the tabs a ``PUT`` with ``dashcards`` leaves out are deleted with their dashcards
(``do-update-tabs!``, src/metabase/dashboards/models/dashboard_tab.clj).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# ------------------------------------------------------------------ malli-like body checks

Check = tuple[Callable[[Any], bool], str]


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


NON_BLANK: Check = (
    lambda v: isinstance(v, str) and bool(v.strip()),
    "value must be a non-blank string.",
)
STRING: Check = (lambda v: isinstance(v, str), "value must be a string.")
MAP: Check = (lambda v: isinstance(v, dict), "value must be a map.")
SEQ: Check = (lambda v: isinstance(v, list), "value must be a sequence.")
INT: Check = (_int, "value must be an integer.")
POS_INT: Check = (lambda v: _int(v) and v > 0, "value must be an integer greater than zero.")
NAT_INT: Check = (
    lambda v: _int(v) and v >= 0,
    "value must be an integer greater than or equal to zero.",
)
BOOL: Check = (lambda v: isinstance(v, bool), "value must be a boolean.")
CARD_TYPE: Check = (
    lambda v: v in ("question", "model", "metric"),
    "value must be one of: `metric`, `model`, `question`.",
)

#: key -> (required, check): required keys may be neither absent nor null ([:maybe ...] off)
Schema = dict[str, tuple[bool, Check]]
COLLECTION_CREATE: Schema = {
    "name": (True, NON_BLANK),
    "description": (False, NON_BLANK),
    "parent_id": (False, POS_INT),
    "namespace": (False, NON_BLANK),
}
CARD_CREATE: Schema = {  # CardCreateSchema, src/metabase/queries/api/card.clj
    "name": (True, NON_BLANK),
    "type": (False, CARD_TYPE),
    "dataset_query": (True, MAP),
    "description": (False, NON_BLANK),
    "display": (True, NON_BLANK),
    "visualization_settings": (True, MAP),
    "collection_id": (False, POS_INT),
    "collection_position": (False, POS_INT),
    "cache_ttl": (False, POS_INT),
    "dashboard_id": (False, POS_INT),
}
CARD_UPDATE: Schema = {k: (False, c) for k, (_, c) in CARD_CREATE.items()} | {
    "description": (False, STRING),
    "archived": (False, BOOL),
}
DASHBOARD_CREATE: Schema = {  # POST /api/dashboard, src/metabase/dashboards/api.clj
    "name": (True, NON_BLANK),
    "parameters": (False, SEQ),
    "description": (False, STRING),
    "cache_ttl": (False, POS_INT),
    "collection_id": (False, POS_INT),
    "collection_position": (False, POS_INT),
}
DASHBOARD_UPDATE: Schema = {k: (False, c) for k, (_, c) in DASHBOARD_CREATE.items()} | {
    "archived": (False, BOOL),
    "dashcards": (False, SEQ),
    "tabs": (False, SEQ),
}
DASHCARD: Schema = {  # UpdatedDashboardCard
    "id": (True, INT),
    "size_x": (True, POS_INT),
    "size_y": (True, POS_INT),
    "row": (True, NAT_INT),
    "col": (True, NAT_INT),
    "parameter_mappings": (False, SEQ),
    "series": (False, SEQ),
}
TAB: Schema = {"id": (True, INT), "name": (True, NON_BLANK)}  # UpdatedDashboardTab
TABS_NEED_DASHCARD_TABS = "This dashboard has tab, makes sure every card has a tab"
UNIQUE_IDS = "value must be seq of maps in which ids are unique"


def refusal(body: Any, schema: Schema) -> dict[str, Any] | None:
    """Metabase's 400 body for ``body`` against ``schema`` (None: accepted)."""
    if not isinstance(body, dict):
        return {"errors": {"body": "value must be a map."}, "specific-errors": {}}
    errors, specific = {}, {}
    for key, (required, (ok, message)) in schema.items():
        value = body.get(key)
        if (value is None and required) or (value is not None and not ok(value)):
            errors[key] = message
            specific[key] = [f"{message.rstrip('.')}, received: {json.dumps(value)}"]
    return {"errors": errors, "specific-errors": specific} if errors else None


# ------------------------------------------------------------------ the stand-in


@dataclass
class FakeMetabase:
    """The stand-in's state; :meth:`serve` runs it on a free port of 127.0.0.1."""

    unhealthy_answers: int = 0  # /api/health answers 503 this many times first
    never_ready: bool = False
    refuse_datasource: bool = False  # POST/PUT /api/database answer 400 "cannot connect"
    #: GET /api/card/:id answers the query as MBQL 5 (stages), as recent versions store it
    mbql5_queries: bool = False
    users: dict[str, str] = field(default_factory=dict)  # email -> password
    setup_token: str = field(default_factory=lambda: str(uuid.uuid4()))
    sessions: set[str] = field(default_factory=set)
    databases: dict[int, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=lambda: {"anon-tracking-enabled": True})
    collections: dict[int, dict[str, Any]] = field(default_factory=dict)
    cards: dict[int, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    health_calls: int = 0
    url: str = ""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _answer(self, method: str, path: str, body: Any, session: str | None) -> tuple[int, Any]:
        self.calls.append((method, path, body))
        parts = urlsplit(path)
        path, query = parts.path, parse_qs(parts.query)
        if path == "/api/health":
            self.health_calls += 1
            if self.never_ready or self.health_calls <= self.unhealthy_answers:
                return 503, {"status": "initializing", "progress": 0.4}
            return 200, {"status": "ok"}
        if path == "/api/session/properties" and method == "GET":
            props: dict[str, Any] = {"has-user-setup": bool(self.users), "site-name": "x"}
            props["setup-token"] = None if self.users else self.setup_token
            return 200, props
        if path == "/api/setup" and method == "POST":
            if self.users:
                return 403, {
                    "message": "The /api/setup route can only be used to create the first "
                    "user, however a user currently exists."
                }
            if body.get("token") != self.setup_token:
                return 400, {"errors": {"token": "Token does not match the setup token."}}
            user = body["user"]
            self.users[user["email"]] = user["password"]
            self.settings["site-name"] = body["prefs"]["site_name"]
            self.settings["anon-tracking-enabled"] = True  # as Metabase's setup does
            return 200, {"id": self._session()}
        if path == "/api/session" and method == "POST":
            if self.users.get(body.get("username")) != body.get("password"):
                return 401, {"errors": {"password": "did not match stored password"}}
            return 200, {"id": self._session()}
        if session not in self.sessions:
            return 401, "Unauthenticated"
        if path == "/api/database" and method == "GET":
            rows = [
                {"id": i, **{k: v for k, v in d.items() if k != "details"}}
                for i, d in sorted(self.databases.items())
            ]
            return 200, {"data": rows, "total": len(rows)}
        m = re.fullmatch(r"/api/database(?:/(\d+))?", path)
        if m and method in ("POST", "PUT"):
            if self.refuse_datasource:
                return 400, {
                    "message": "Connection to 'pg.cinepulse.svc:5432' successful, but "
                    "could not connect to DB."
                }
            if method == "POST":
                db_id = max(self.databases, default=1) + 1  # 1: the sample database
                self.databases[db_id] = dict(body)
            else:
                db_id = int(m.group(1))
                if db_id not in self.databases:
                    return 404, "Not found."
                self.databases[db_id] |= body
            return 200, {"id": db_id, **self.databases[db_id]}
        m = re.fullmatch(r"/api/setting/([a-z-]+)", path)
        if m and method == "PUT":
            self.settings[m.group(1)] = body["value"]
            return 204, None
        if path.startswith("/api/collection"):
            return self._collection(method, path, body, query)
        if path.startswith("/api/card"):
            return self._card(method, path, body)
        if path.startswith("/api/dashboard"):
            return self._dashboard(method, path, body)
        return 404, "Not found."

    # ---------------------------------------------------------------- collections

    def _collection(
        self, method: str, path: str, body: Any, query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        if path == "/api/collection" and method == "GET":
            root = {"id": "root", "name": "Our analytics", "can_write": True}
            rows = [{"id": i, **c} for i, c in sorted(self.collections.items())]
            return 200, [root, *(r for r in rows if not r["archived"])]
        if path == "/api/collection" and method == "POST":
            if error := refusal(body, COLLECTION_CREATE):
                return 400, error
            coll_id = next(self._ids)
            self.collections[coll_id] = {
                "name": body["name"],
                "description": body.get("description"),
                "location": "/",
                "personal_owner_id": None,
                "archived": False,
            }
            return 200, {"id": coll_id, **self.collections[coll_id]}
        m = re.fullmatch(r"/api/collection/(\d+)/items", path)
        if m and method == "GET":
            coll_id = int(m.group(1))
            if coll_id not in self.collections:
                return 404, "Not found."
            models = set(query.get("models", ["card", "dashboard"]))
            data = [
                {"id": i, "name": o["name"], "model": model}
                for model, objects in (("card", self.cards), ("dashboard", self.dashboards))
                if model in models
                for i, o in sorted(objects.items())
                if o["collection_id"] == coll_id and not o["archived"]
            ]
            return 200, {"data": data, "total": len(data), "models": sorted(models)}
        return 404, "Not found."

    # ---------------------------------------------------------------- cards

    def _query_refusal(self, query: dict[str, Any]) -> tuple[int, Any] | None:
        native = query.get("native")
        if query.get("type") != "native" or not isinstance(native, dict):
            return 400, {"message": "the stand-in takes native queries only"}
        if not isinstance(native.get("query"), str) or not native["query"].strip():
            return 400, {"errors": {"dataset_query": "native query must be a non-blank string"}}
        if query.get("database") not in self.databases:
            return 400, {"message": f"Database {query.get('database')} does not exist."}
        return None

    def _card(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == "/api/card" and method == "POST":
            if error := refusal(body, CARD_CREATE):
                return 400, error
            if problem := self._query_refusal(body["dataset_query"]):
                return problem
            if body.get("collection_id") not in (None, *self.collections):
                return 404, "Not found."
            card_id = next(self._ids)
            self.cards[card_id] = {"collection_id": None, "description": None} | body
            self.cards[card_id]["archived"] = False
            return 200, self._show_card(card_id)
        m = re.fullmatch(r"/api/card/(\d+)", path)
        if not m or int(m.group(1)) not in self.cards:
            return 404, "Not found."
        card_id = int(m.group(1))
        if method == "GET":
            return 200, self._show_card(card_id)
        if method == "PUT":
            if error := refusal(body, CARD_UPDATE):
                return 400, error
            if body.get("dataset_query") and (
                problem := self._query_refusal(body["dataset_query"])
            ):
                return problem
            self.cards[card_id] |= {k: v for k, v in body.items() if k in CARD_UPDATE}
            return 200, self._show_card(card_id)
        return 404, "Not found."

    def _show_card(self, card_id: int) -> dict[str, Any]:
        card = {"id": card_id, **json.loads(json.dumps(self.cards[card_id]))}
        query = card["dataset_query"]
        if self.mbql5_queries and query.get("type") == "native":
            card["dataset_query"] = {
                "lib/type": "mbql/query",
                "database": query["database"],
                "stages": [
                    {
                        "lib/type": "mbql.stage/native",
                        "native": query["native"]["query"],
                        "template-tags": query["native"].get("template-tags", {}),
                    }
                ],
            }
        return card

    # ---------------------------------------------------------------- dashboards

    def _dashboard(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == "/api/dashboard" and method == "POST":
            if error := refusal(body, DASHBOARD_CREATE):
                return 400, error
            if body.get("collection_id") not in (None, *self.collections):
                return 404, "Not found."
            dash_id = next(self._ids)
            self.dashboards[dash_id] = {
                "name": body["name"],
                "description": body.get("description"),
                "collection_id": body.get("collection_id"),
                "parameters": body.get("parameters") or [],
                "archived": False,
                "dashcards": [],
                "tabs": [],
            }
            return 200, self._show_dashboard(dash_id)
        m = re.fullmatch(r"/api/dashboard/(\d+)", path)
        if not m or int(m.group(1)) not in self.dashboards:
            return 404, "Not found."
        dash_id = int(m.group(1))
        if method == "GET":
            return 200, self._show_dashboard(dash_id)
        if method != "PUT":
            return 404, "Not found."
        if error := refusal(body, DASHBOARD_UPDATE):
            return 400, error
        dashcards, tabs = body.get("dashcards"), body.get("tabs")
        for key, items, schema in (("dashcards", dashcards, DASHCARD), ("tabs", tabs, TAB)):
            for item in items or []:
                if error := refusal(item, schema):
                    return 400, {"errors": {key: error["errors"]}}
            ids = [d["id"] for d in items or []]
            if len(set(ids)) != len(ids):
                return 400, {"errors": {key: UNIQUE_IDS}}
        dash = self.dashboards[dash_id]
        if dashcards is not None:
            if (dash["tabs"] or tabs) and any(d.get("dashboard_tab_id") is None for d in dashcards):
                return 400, TABS_NEED_DASHCARD_TABS  # ex-info's message: a plain-text body
            for d in dashcards:  # api/read-check and check-not-archived of each card
                card = self.cards.get(d.get("card_id"))
                if card is None:
                    return 404, "Not found."
                if card["archived"]:
                    return 404, {"message": "The object has been archived."}
            new_tabs, new_tab = self._new_tabs(dash_id, tabs or [])
            tab_ids = [
                new_tab.get(d.get("dashboard_tab_id"), d.get("dashboard_tab_id")) for d in dashcards
            ]
            if any(t is not None and t not in new_tab.values() for t in tab_ids):
                return 500, {"message": "dashboard_tab_id: not a tab of this dashboard"}  # the FK
            dash["tabs"] = new_tabs
        dash |= {
            k: v
            for k, v in body.items()
            if k in DASHBOARD_UPDATE and k not in ("dashcards", "tabs")
        }
        if dashcards is not None:
            tabs_kept = {t["id"] for t in dash["tabs"]}
            current = {  # the dashcards of deleted tabs went with them
                d["id"]
                for d in dash["dashcards"]
                if d.get("dashboard_tab_id") is None or d["dashboard_tab_id"] in tabs_kept
            }
            dash["dashcards"] = [  # left out: deleted; unknown or negative ids: created
                {
                    "id": d["id"] if d["id"] in current else next(self._ids),
                    "dashboard_id": dash_id,
                    "dashboard_tab_id": tab_id,
                    "card_id": d["card_id"],
                    "row": d["row"],
                    "col": d["col"],
                    "size_x": d["size_x"],
                    "size_y": d["size_y"],
                    "parameter_mappings": d.get("parameter_mappings") or [],
                    "visualization_settings": d.get("visualization_settings") or {},
                }
                for d, tab_id in zip(dashcards, tab_ids, strict=True)
            ]
        return 200, self._show_dashboard(dash_id)

    def _new_tabs(
        self, dash_id: int, tabs: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[int, int]]:
        """``do-update-tabs!``: the tabs sent, in their order (``position``), become the
        dashboard's tabs (a negative or unknown id: created), the others are deleted; with the
        map sent id -> tab id."""
        current = {t["id"] for t in self.dashboards[dash_id]["tabs"]}
        new_tab = {t["id"]: t["id"] if t["id"] in current else next(self._ids) for t in tabs}
        new_tabs = [
            {"id": new_tab[t["id"]], "dashboard_id": dash_id, "name": t["name"], "position": i}
            for i, t in enumerate(tabs)
        ]
        return new_tabs, new_tab

    def _show_dashboard(self, dash_id: int) -> dict[str, Any]:
        dash = json.loads(json.dumps(self.dashboards[dash_id]))
        for d in dash["dashcards"]:
            d["card"] = self._show_card(d["card_id"])
            d["series"] = []
        return {"id": dash_id, **dash}

    # ---------------------------------------------------------------- serving

    def _session(self) -> str:
        session = str(uuid.uuid4())
        self.sessions.add(session)
        return session

    def writes(self) -> list[tuple[str, str]]:
        """(method, path) of every call that could change something, setup and login aside."""
        return [
            (m, p)
            for m, p, _ in self.calls
            if m in ("POST", "PUT", "DELETE") and p not in ("/api/session",)
        ]

    def serve(self) -> Iterator[FakeMetabase]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, payload = fake._answer(
                    self.command, self.path, body, self.headers.get("X-Metabase-Session")
                )
                raw = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
