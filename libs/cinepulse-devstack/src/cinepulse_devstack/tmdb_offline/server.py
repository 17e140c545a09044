"""The offline TMDB server's endpoints: movie details, discover, changes, genres, the common
path (rate limit, auth, faults, stats) and the admin endpoints."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cinepulse_devstack.tmdb_offline.data import Json, Movie, Recorded
from cinepulse_devstack.tmdb_offline.errors import (
    INVALID_INPUT,
    NOT_FOUND,
    RATE_LIMITED,
    SERVER_ERRORS,
    UNAUTHORIZED,
    TmdbError,
)
from cinepulse_devstack.tmdb_offline.faults import State, malform, parse_faults, parse_instant

PAGE_SIZE = 20
CHANGES_PAGE_SIZE = 100

# discover's sort_by values (the enum of TMDB's OpenAPI description, plus release_date.*).
SORT_FIELDS = {
    "popularity": "popularity",
    "primary_release_date": "release_date",
    "release_date": "release_date",
    "revenue": "revenue",
    "vote_average": "vote_average",
    "vote_count": "vote_count",
    "title": "title",
    "original_title": "original_title",
}


class OfflineTmdb:
    """The server's data and state; :func:`create_app` puts it on ``app.state.tmdb``."""

    def __init__(
        self,
        movies: dict[int, Movie],
        recorded: Recorded,
        *,
        token: str,
        api_key: str,
        max_pages: int,
        rate_limit_per_s: float | None,
        cap_total_pages: bool,
        changes_max_days: int | None,
        catalogue: str = "tmdb-5000",
    ) -> None:
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        self.movies = movies
        self.recorded = recorded
        self.token, self.api_key = token, api_key
        self.max_pages = max_pages
        self.rate_limit_per_s = rate_limit_per_s
        self.cap_total_pages = cap_total_pages
        self.changes_max_days = changes_max_days
        #: where the movies come from: "tmdb-5000" (the data set) or "synthetic"
        self.catalogue = catalogue
        self.state = State()

    # ---- data -------------------------------------------------------------------------------

    def details(self, movie_id: int) -> Json:
        movie = self.movies.get(movie_id)
        if movie is None:
            raise TmdbError(*NOT_FOUND)
        edits = self.state.edits.get(movie_id)
        return {**movie.details, **edits} if edits else dict(movie.details)

    def discover_entry(self, details: Json) -> Json:
        entry = {**details, "genre_ids": [g["id"] for g in details.get("genres") or []]}
        return {k: entry.get(k) for k in self.recorded.discover_keys}

    def page_param(self, request: Request) -> int:
        raw = request.query_params.get("page", "1")
        try:
            page = int(raw)
        except ValueError:
            page = 0
        if not 1 <= page <= self.max_pages:
            raise TmdbError(
                400,
                22,
                f"Invalid page: Pages start at 1 and max at {self.max_pages}. "
                "They are expected to be an integer.",
            )
        return page

    def paged(self, items: Sequence[Json], page: int, size: int, *, cap: bool) -> Json:
        total_pages = math.ceil(len(items) / size)
        if cap:
            total_pages = min(total_pages, self.max_pages)
        return {
            "page": page,
            "results": list(items[(page - 1) * size : page * size]),
            "total_pages": total_pages,
            "total_results": len(items),
        }

    # ---- endpoints ---------------------------------------------------------------------------

    async def movie(self, request: Request) -> Json:
        movie_id = _path_int(request, "movie_id")
        body = self.details(movie_id)
        appended = {
            part.strip()
            for part in request.query_params.get("append_to_response", "").split(",")
            if part.strip()
        }
        if "keywords" in appended:
            body["keywords"] = {"keywords": list(self.movies[movie_id].keywords)}
        if "credits" in appended:
            body["credits"] = {"cast": [], "crew": []}
        return body

    async def movie_keywords(self, request: Request) -> Json:
        movie_id = _path_int(request, "movie_id")
        self.details(movie_id)  # 404 for an unknown id
        return {"id": movie_id, "keywords": list(self.movies[movie_id].keywords)}

    async def movie_credits(self, request: Request) -> Json:
        movie_id = _path_int(request, "movie_id")
        self.details(movie_id)
        return {"id": movie_id, "cast": [], "crew": []}

    async def discover(self, request: Request) -> Json:
        q = request.query_params
        page = self.page_param(request)
        gte = _date_param(q, "primary_release_date.gte") or _date_param(q, "release_date.gte")
        lte = _date_param(q, "primary_release_date.lte") or _date_param(q, "release_date.lte")
        include_adult = q.get("include_adult", "false").lower() == "true"
        sort_by = q.get("sort_by") or "popularity.desc"
        field_name, _, direction = sort_by.rpartition(".")
        if field_name not in SORT_FIELDS or direction not in ("asc", "desc"):
            raise TmdbError(*INVALID_INPUT)
        key = SORT_FIELDS[field_name]

        found = []
        for movie_id in sorted(self.movies):  # by id, so ties keep a stable order
            details = self.details(movie_id)
            if details["adult"] and not include_adult:
                continue
            released = details["release_date"] or ""
            if (gte or lte) and not released:
                continue
            if (gte and released < gte) or (lte and released > lte):
                continue
            found.append(details)
        found.sort(key=lambda d: _sort_value(d.get(key)), reverse=direction == "desc")
        entries = [self.discover_entry(d) for d in found]
        return self.paged(entries, page, PAGE_SIZE, cap=self.cap_total_pages)

    async def changes(self, request: Request) -> Json:
        q = request.query_params
        page = self.page_param(request)
        try:
            end = parse_instant(q["end_date"], end_of_day=True) if q.get("end_date") else None
            start = parse_instant(q["start_date"]) if q.get("start_date") else None
        except ValueError as exc:
            raise TmdbError(*INVALID_INPUT) from exc
        end = end or datetime.now(UTC)
        start = start or end - timedelta(days=1)
        if start > end or (
            self.changes_max_days is not None
            and end - start > timedelta(days=self.changes_max_days, seconds=1)
        ):
            raise TmdbError(*INVALID_INPUT)
        first_seen: dict[int, datetime] = {}
        for at, movie_id in sorted(self.state.changes):
            if start <= at <= end:
                first_seen.setdefault(movie_id, at)
        results = [{"id": movie_id, "adult": False} for movie_id in first_seen]
        return self.paged(results, page, CHANGES_PAGE_SIZE, cap=False)

    async def genres(self, request: Request) -> Json:
        return json.loads(json.dumps(self.recorded.genres))

    # ---- the common path: rate limit, auth, faults, stats -----------------------------------

    def authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer" and credential.strip() == self.token:
            return True
        return request.query_params.get("api_key") == self.api_key

    def over_rate_limit(self) -> bool:
        if self.rate_limit_per_s is None:
            return False
        now = time.monotonic()
        recent = self.state.recent
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        if len(recent) >= self.rate_limit_per_s:
            return True
        recent.append(now)
        return False

    async def serve(
        self, request: Request, template: str, handler: Callable[[Request], Awaitable[Json]]
    ) -> Response:
        response = await self._serve(request, handler)
        self.state.requests[template][str(response.status_code)] += 1
        return response

    async def _serve(
        self, request: Request, handler: Callable[[Request], Awaitable[Json]]
    ) -> Response:
        if self.over_rate_limit():
            self.state.rate_limited += 1
            return _error(TmdbError(*RATE_LIMITED), headers={"Retry-After": "1"})
        if not self.authorized(request):
            return _error(TmdbError(*UNAUTHORIZED))
        fault = self.state.take_fault(request.url.path)
        if fault is not None and fault.kind == "status_429":
            retry_after = fault.params["retry_after"]
            header = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
            return _error(TmdbError(*RATE_LIMITED), headers={"Retry-After": header})
        if fault is not None and fault.kind == "status_5xx":
            status = fault.params["status"]
            code, message = SERVER_ERRORS.get(status, SERVER_ERRORS[500])
            return _error(TmdbError(status, code, message))
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.params["delay_s"])
        try:
            payload = await handler(request)
        except TmdbError as exc:
            if fault is not None and fault.kind == "malformed":
                return malform(exc.body(), fault.params["kind"], exc.http_status)
            return _error(exc)
        if fault is not None and fault.kind == "malformed":
            return malform(payload, fault.params["kind"])
        return JSONResponse(payload)

    # ---- admin ------------------------------------------------------------------------------

    async def admin_faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                new = parse_faults(await _json_body(request))
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            self.state.faults.extend(f for f in new if f.remaining > 0)
        return JSONResponse({"pending": [f.describe() for f in self.state.faults]})

    async def admin_changes(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(
                {"changes": [{"id": i, "at": at.isoformat()} for at, i in self.state.changes]}
            )
        try:
            body = await _json_body(request)
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            ids = body.get("ids")
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise ValueError("ids must be a list of movie ids")
            at = parse_instant(str(body["at"])) if body.get("at") else datetime.now(UTC)
            suffix = body.get("title_suffix") or ""
            updates = body.get("set") or {}
            if not isinstance(suffix, str) or not isinstance(updates, dict):
                raise ValueError("title_suffix must be a string and set an object")
            unknown_fields = (set(updates) - set(self.recorded.details_keys)) | (
                {"id"} & set(updates)
            )
            if unknown_fields:
                raise ValueError(f"set: fields that cannot be set: {sorted(unknown_fields)}")
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        unknown = [i for i in ids if i not in self.movies]
        if unknown:
            return JSONResponse({"error": "unknown movie ids", "ids": unknown}, status_code=404)
        for movie_id in ids:
            self.state.changes.append((at, movie_id))
            edits = self.state.edits.setdefault(movie_id, {})
            edits.update(updates)
            if suffix:
                edits["title"] = self.details(movie_id)["title"] + suffix
        return JSONResponse({"changed": ids, "at": at.isoformat()})

    async def admin_stats(self, request: Request) -> Response:
        s = self.state
        return JSONResponse(
            {
                "requests": {t: dict(c) for t, c in sorted(s.requests.items())},
                "total_requests": sum(sum(c.values()) for c in s.requests.values()),
                "faults_served": dict(s.faults_served),
                "faults_pending": [f.describe() for f in s.faults],
                "rate_limited": s.rate_limited,
                "changes": len(s.changes),
                "movies": len(self.movies),
                "catalogue": self.catalogue,
                "max_pages": self.max_pages,
            }
        )

    async def admin_reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"reset": True})


def _error(exc: TmdbError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.http_status, headers=headers)


def _path_int(request: Request, name: str) -> int:
    try:
        return int(request.path_params[name])
    except ValueError as exc:
        raise TmdbError(*NOT_FOUND) from exc


def _date_param(query: Mapping[str, str], name: str) -> str | None:
    value = (query.get(name) or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError as exc:
        raise TmdbError(*INVALID_INPUT) from exc


def _sort_value(value: Any) -> tuple[int, Any]:
    """Sort key putting empty values (no release date, null) first in ascending order."""
    if value is None or value == "":
        return (0, 0)
    if isinstance(value, str):
        return (1, value.casefold())
    return (1, value)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc
