"""An offline TMDB API v3 server for demos and tests: recorded data, TMDB's paths and bodies.

A real TMDB client runs against it unchanged; only the base URL differs. It answers from

* ``tmdb-5000/tmdb_5000_movies.csv`` (3,000 real movies): movie details, keywords, discover;
* ``tmdb-api/tmdb-api-openapi.json`` (TMDB's OpenAPI description with a recorded example
  response per path): the response shapes (field names and order), the genre list verbatim.

Both are read in place from a local data sets mirror (``$CINEPULSE_DATASETS``, else
``<repo>/../shared/datasets``; ``cinepulse-data where`` shows which) and never copied.

Paths (GET, ``Authorization: Bearer <token>`` or ``?api_key=<key>``)::

  /3/movie/{movie_id}?append_to_response=keywords,credits
  /3/movie/{movie_id}/keywords     /3/movie/{movie_id}/credits (empty cast and crew)
  /3/discover/movie?page=&sort_by=&primary_release_date.gte=&primary_release_date.lte=
  /3/movie/changes?start_date=&end_date=&page=
  /3/genre/movie/list

Like TMDB, discover refuses pages beyond a cap (``max_pages``, 500 at TMDB) with HTTP 400 and
status_code 22, so a full load has to walk release-date windows.

Admin (no auth), for tests and demos to steer it::

  POST /__admin/faults   {"status_429": {"count": N, "retry_after": S},
                          "status_5xx": {"count": N, "status": 500|502|503|504},
                          "slow": {"count": N, "delay_s": X},
                          "malformed": {"count": N, "kind": "truncated" | "missing_fields"
                                        | "nulls" | "extra_fields" | "not_json"},
                          "path_regex": "^/3/movie/\\d+$"}
  GET  /__admin/faults   what is still pending
  POST /__admin/changes  {"ids": [...], "at": "<ISO datetime, default now>",
                          "title_suffix": " (v2)", "set": {"runtime": 99}}
  GET  /__admin/stats    requests by path template and status, faults served by kind
  POST /__admin/reset    clear faults, stats, changes and edits

Run it: ``cinepulse-tmdb-offline --port 18300 --max-pages 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import math
import re
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from cinepulse_common.paths import DATASETS_ENV, dataset_dir

log = logging.getLogger("cinepulse.tmdb_offline")

DEFAULT_CSV = dataset_dir("tmdb-5000") / "tmdb_5000_movies.csv"
DEFAULT_OPENAPI = dataset_dir("tmdb-api") / "tmdb-api-openapi.json"

DEFAULT_TOKEN = "offline-read-token"  # noqa: S105 - a fixed demo credential, not a secret
DEFAULT_API_KEY = "offline-api-key"
DEFAULT_PORT = 18300

PAGE_SIZE = 20
CHANGES_PAGE_SIZE = 100

FAULT_ORDER = ("status_429", "status_5xx", "malformed", "slow")
MALFORMED_KINDS = ("truncated", "missing_fields", "nulls", "extra_fields", "not_json")
DEFAULT_FAULT_PATHS = r"^/3/"

# TMDB's status codes and messages (https://developer.themoviedb.org/docs/errors).
NOT_FOUND = (404, 34, "The resource you requested could not be found.")
UNAUTHORIZED = (401, 7, "Invalid API key: You must be granted a valid key.")
RATE_LIMITED = (429, 25, "Your request count (#) is over the allowed limit of (40).")
INVALID_INPUT = (400, 47, "The input is not valid.")
SERVER_ERRORS: dict[int, tuple[int, str]] = {
    500: (11, "Internal error: Something went wrong, contact TMDB."),
    502: (43, "Couldn't connect to the backend server."),
    503: (46, "The API is undergoing maintenance. Try again later."),
    504: (24, "Your request to the backend server timed out. Try again."),
}

# The CSV's spoken_languages carry only the native name; TMDB also sends ``english_name``.
ENGLISH_LANGUAGE_NAMES = {
    "af": "Afrikaans", "am": "Amharic", "ar": "Arabic", "bg": "Bulgarian", "bo": "Tibetan",
    "bs": "Bosnian", "ce": "Chechen", "cn": "Cantonese", "co": "Corsican", "cs": "Czech",
    "cy": "Welsh", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "eo": "Esperanto", "es": "Spanish", "et": "Estonian", "fa": "Persian", "fi": "Finnish",
    "fr": "French", "ga": "Irish", "gd": "Gaelic", "gl": "Galician", "he": "Hebrew",
    "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "hy": "Armenian", "is": "Icelandic",
    "it": "Italian", "iu": "Inuktitut", "ja": "Japanese", "ka": "Georgian", "kk": "Kazakh",
    "km": "Khmer", "ko": "Korean", "kw": "Cornish", "la": "Latin", "ml": "Malayalam",
    "mn": "Mongolian", "ne": "Nepali", "nl": "Dutch", "no": "Norwegian", "nv": "Navajo",
    "ny": "Chichewa; Nyanja", "pa": "Punjabi", "pl": "Polish", "ps": "Pushto",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sa": "Sanskrit",
    "sh": "Serbo-Croatian", "si": "Sinhalese", "sk": "Slovak", "so": "Somali",
    "sq": "Albanian", "sr": "Serbian", "st": "Sotho", "sv": "Swedish", "sw": "Swahili",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish",
    "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese", "wo": "Wolof", "xh": "Xhosa",
    "xx": "No Language", "yi": "Yiddish", "zh": "Mandarin", "zu": "Zulu",
}  # fmt: skip

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

# What the malformed faults take away or null out.
MISSING_FIELDS = ("id", "title", "genres")
NULLED_FIELDS = (
    "adult", "genres", "genre_ids", "runtime", "release_date", "title", "overview",
    "popularity", "vote_average", "vote_count", "budget", "revenue", "production_companies",
    "spoken_languages", "keywords",
)  # fmt: skip

Json = dict[str, Any]


class DatasetMissingError(FileNotFoundError):
    """A data file the server answers from is not there."""


class TmdbError(Exception):
    """Answered as TMDB's error body ``{"success": false, "status_code", "status_message"}``."""

    def __init__(self, http_status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message

    def body(self) -> Json:
        return {"success": False, "status_code": self.code, "status_message": self.message}


# --------------------------------------------------------------------------------------------
# Recorded data


@dataclass(frozen=True)
class Recorded:
    """The example responses of TMDB's OpenAPI description the server copies shapes from."""

    details: Json
    discover: Json
    credits: Json
    genres: Json
    changes: Json

    @property
    def details_keys(self) -> list[str]:
        return list(self.details)

    @property
    def discover_keys(self) -> list[str]:
        return list(self.discover["results"][0])


def recorded_example(spec: Mapping[str, Any], path: str) -> Json:
    """The recorded 200 example of ``GET path`` (stored as a JSON string), parsed."""
    content = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    example = next(iter(content["examples"].values()))["value"]
    parsed = json.loads(example) if isinstance(example, str) else example
    if not isinstance(parsed, dict):
        raise ValueError(f"the example of {path} is not a JSON object")
    return parsed


def load_recorded(openapi_json: Path) -> Recorded:
    spec = json.loads(require_dataset(openapi_json).read_text(encoding="utf-8"))
    return Recorded(
        details=recorded_example(spec, "/3/movie/{movie_id}"),
        discover=recorded_example(spec, "/3/discover/movie"),
        credits=recorded_example(spec, "/3/movie/{movie_id}/credits"),
        genres=recorded_example(spec, "/3/genre/movie/list"),
        changes=recorded_example(spec, "/3/movie/changes"),
    )


def require_dataset(path: Path) -> Path:
    """``path`` if the file is there, else :class:`DatasetMissingError` naming it and the
    setting that points at the data sets."""
    if not path.is_file():
        raise DatasetMissingError(
            f"data file not found: {path} (`cinepulse-data where` shows where each data set "
            "is looked for; `cinepulse-data fetch` downloads the public ones, the TMDB sets "
            f"come from a mirror: set ${DATASETS_ENV} to a folder holding tmdb-5000/ and "
            "tmdb-api/)"
        )
    return path


def json_list(cell: str) -> list[Json]:
    """A CSV cell holding a JSON list (empty cell, or not a list: ``[]``)."""
    value = json.loads(cell) if cell.strip() else []
    return value if isinstance(value, list) else []


def _int(cell: str) -> int:
    return int(float(cell)) if cell.strip() else 0


def _float(cell: str) -> float:
    return float(cell) if cell.strip() else 0.0


def movie_from_row(row: Mapping[str, str], keys: Sequence[str]) -> Json:
    """A ``/3/movie/{id}`` body from one CSV row, with exactly ``keys`` (the example's, in
    its order): what the CSV has, TMDB's own empty values for what it lacks."""
    companies = [
        {"id": c["id"], "logo_path": None, "name": c["name"], "origin_country": ""}
        for c in json_list(row["production_companies"])
    ]
    languages = [
        {
            "english_name": ENGLISH_LANGUAGE_NAMES.get(lang["iso_639_1"], lang["name"]),
            "iso_639_1": lang["iso_639_1"],
            "name": lang["name"],
        }
        for lang in json_list(row["spoken_languages"])
    ]
    built: Json = {
        "adult": False,
        "backdrop_path": None,
        "belongs_to_collection": None,
        "budget": _int(row["budget"]),
        "genres": [{"id": g["id"], "name": g["name"]} for g in json_list(row["genres"])],
        "homepage": row["homepage"],
        "id": int(row["id"]),
        "imdb_id": None,
        "original_language": row["original_language"],
        "original_title": row["original_title"],
        "overview": row["overview"],
        "popularity": _float(row["popularity"]),
        "poster_path": None,
        "production_companies": companies,
        "production_countries": [
            {"iso_3166_1": c["iso_3166_1"], "name": c["name"]}
            for c in json_list(row["production_countries"])
        ],
        "release_date": row["release_date"].strip(),
        "revenue": _int(row["revenue"]),
        "runtime": _int(row["runtime"]),
        "spoken_languages": languages,
        "status": row["status"] or "Released",
        "tagline": row["tagline"],
        "title": row["title"],
        "video": False,
        "vote_average": _float(row["vote_average"]),
        "vote_count": _int(row["vote_count"]),
    }
    return {k: built.get(k) for k in keys}


@dataclass
class Movie:
    details: Json  # the /3/movie/{id} body without appended parts
    keywords: list[Json]


def load_movies(movies_csv: Path, keys: Sequence[str]) -> dict[int, Movie]:
    """Every CSV row as a :class:`Movie`, by id (the first row wins on a repeated id)."""
    csv.field_size_limit(1 << 24)
    movies: dict[int, Movie] = {}
    with require_dataset(movies_csv).open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            details = movie_from_row(row, keys)
            keywords = [{"id": k["id"], "name": k["name"]} for k in json_list(row["keywords"])]
            movies.setdefault(details["id"], Movie(details, keywords))
    return movies


# --------------------------------------------------------------------------------------------
# Faults, changes, stats


@dataclass
class Fault:
    kind: str  # one of FAULT_ORDER
    remaining: int
    params: Json
    path_regex: re.Pattern[str]

    def describe(self) -> Json:
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "path_regex": self.path_regex.pattern,
            **self.params,
        }


def parse_faults(body: Any) -> list[Fault]:
    """The faults of a ``POST /__admin/faults`` body; ValueError says what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    unknown = set(body) - {*FAULT_ORDER, "path_regex"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; expected {[*FAULT_ORDER, 'path_regex']}")
    pattern = body.get("path_regex") or DEFAULT_FAULT_PATHS
    try:
        regex = re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise ValueError(f"path_regex: {exc}") from exc
    faults = []
    for kind in FAULT_ORDER:
        spec = body.get(kind)
        if spec is None:
            continue
        if not isinstance(spec, dict):
            raise ValueError(f"{kind} must be an object")
        count = spec.get("count", 1)
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"{kind}.count must be a non-negative integer")
        params: Json
        if kind == "status_429":
            retry_after = spec.get("retry_after", 1)
            if not isinstance(retry_after, int | float) or retry_after < 0:
                raise ValueError("status_429.retry_after must be a number of seconds")
            params = {"retry_after": retry_after}
        elif kind == "status_5xx":
            status = spec.get("status", 500)
            if not isinstance(status, int) or not 500 <= status <= 599:
                raise ValueError("status_5xx.status must be a 5xx status")
            params = {"status": status}
        elif kind == "slow":
            delay = spec.get("delay_s", 1.0)
            if not isinstance(delay, int | float) or delay < 0:
                raise ValueError("slow.delay_s must be a number of seconds")
            params = {"delay_s": float(delay)}
        else:
            mkind = spec.get("kind", "truncated")
            if mkind not in MALFORMED_KINDS:
                raise ValueError(f"malformed.kind must be one of {list(MALFORMED_KINDS)}")
            params = {"kind": mkind}
        faults.append(Fault(kind, count, params, regex))
    return faults


def parse_instant(text: str, *, end_of_day: bool = False) -> datetime:
    """A ``YYYY-MM-DD`` date (its start, or its last microsecond with ``end_of_day``) or an
    ISO datetime, as an aware UTC datetime (naive datetimes are taken as UTC)."""
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = date.fromisoformat(text)
        return datetime.combine(day, dtime.max if end_of_day else dtime.min, tzinfo=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass
class State:
    """Everything the admin endpoints steer; ``reset`` brings back the start state."""

    faults: list[Fault] = field(default_factory=list)
    changes: list[tuple[datetime, int]] = field(default_factory=list)
    edits: dict[int, Json] = field(default_factory=dict)  # id -> fields over the CSV's
    requests: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    faults_served: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    recent: deque[float] = field(default_factory=deque)  # accepted request times (rate limit)

    def reset(self) -> None:
        self.faults.clear()
        self.changes.clear()
        self.edits.clear()
        self.requests.clear()
        self.faults_served.clear()
        self.rate_limited = 0
        self.recent.clear()

    def take_fault(self, path: str) -> Fault | None:
        """The fault this request gets, if any: 429 before 5xx before malformed before slow."""
        for kind in FAULT_ORDER:
            for fault in self.faults:
                if fault.kind == kind and fault.remaining > 0 and fault.path_regex.search(path):
                    fault.remaining -= 1
                    self.faults_served[kind] += 1
                    if kind == "malformed":
                        self.faults_served[f"malformed:{fault.params['kind']}"] += 1
                    self.faults = [f for f in self.faults if f.remaining > 0]
                    return fault
        return None


# --------------------------------------------------------------------------------------------
# Malformed bodies


def _targets(payload: Json) -> list[Json]:
    """The objects a malformed fault damages: the entries of a list answer (``results``),
    else the answer itself."""
    items = payload.get("results")
    if isinstance(items, list) and items and all(isinstance(i, dict) for i in items):
        return list(items)
    return [payload]


def malform(payload: Json, kind: str, status_code: int = 200) -> Response:
    """``payload`` damaged the way ``kind`` says, with the status it would have had."""
    if kind == "not_json":
        return PlainTextResponse(
            "<html><body>upstream answered garbage</body></html>", status_code=status_code
        )
    if kind == "truncated":
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return Response(
            text[: max(1, len(text) // 2)], status_code=status_code, media_type="application/json"
        )
    damaged = json.loads(json.dumps(payload))  # a deep copy: never touch the stored movie
    for obj in _targets(damaged):
        if kind == "missing_fields":
            for key in MISSING_FIELDS:
                obj.pop(key, None)
        elif kind == "nulls":
            for key in NULLED_FIELDS:
                if key in obj:
                    obj[key] = None
        elif kind == "extra_fields":
            obj["x_offline_unexpected"] = {"nested": [1, "two", None]}
            obj["rating_v2"] = "not-a-number"
    if kind == "extra_fields":
        damaged["x_offline_extra"] = True
    return JSONResponse(damaged, status_code=status_code)


# --------------------------------------------------------------------------------------------
# The app


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


def create_app(
    movies_csv: Path = DEFAULT_CSV,
    openapi_json: Path = DEFAULT_OPENAPI,
    *,
    token: str = DEFAULT_TOKEN,
    api_key: str = DEFAULT_API_KEY,
    max_pages: int = 500,
    rate_limit_per_s: float | None = None,
    cap_total_pages: bool = True,
    changes_max_days: int | None = None,
) -> Starlette:
    """The offline TMDB app. Raises :class:`DatasetMissingError` if a data file is missing.

    ``max_pages``: the highest page discover and changes serve (TMDB: 500); above it, HTTP 400
    with status_code 22. ``cap_total_pages``: report discover's ``total_pages`` as
    ``min(pages, max_pages)``. ``rate_limit_per_s``: requests per second over which /3/ answers
    429 with ``Retry-After: 1`` (None: no limit). ``changes_max_days``: refuse longer
    /3/movie/changes windows (TMDB documents 14 days), None: no limit.
    """
    recorded = load_recorded(Path(openapi_json))
    movies = load_movies(Path(movies_csv), recorded.details_keys)
    tmdb = OfflineTmdb(
        movies,
        recorded,
        token=token,
        api_key=api_key,
        max_pages=max_pages,
        rate_limit_per_s=rate_limit_per_s,
        cap_total_pages=cap_total_pages,
        changes_max_days=changes_max_days,
    )

    def api(template: str, handler: Callable[[Request], Awaitable[Json]]) -> Route:
        async def endpoint(request: Request) -> Response:
            return await tmdb.serve(request, template, handler)

        return Route(template, endpoint, methods=["GET"])

    async def not_found(request: Request) -> Json:
        raise TmdbError(*NOT_FOUND)

    routes = [
        # /3/movie/changes before /3/movie/{movie_id}, which would take "changes" for an id
        api("/3/movie/changes", tmdb.changes),
        api("/3/movie/{movie_id}", tmdb.movie),
        api("/3/movie/{movie_id}/keywords", tmdb.movie_keywords),
        api("/3/movie/{movie_id}/credits", tmdb.movie_credits),
        api("/3/discover/movie", tmdb.discover),
        api("/3/genre/movie/list", tmdb.genres),
        api("/3/{rest:path}", not_found),
        Route("/__admin/faults", tmdb.admin_faults, methods=["GET", "POST"]),
        Route("/__admin/changes", tmdb.admin_changes, methods=["GET", "POST"]),
        Route("/__admin/stats", tmdb.admin_stats, methods=["GET"]),
        Route("/__admin/reset", tmdb.admin_reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.tmdb = tmdb
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cinepulse-tmdb-offline",
        description="Offline TMDB API v3 server from recorded data, for demos and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--max-pages", type=int, default=500, help="page cap (TMDB: 500)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="accepted Bearer token")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="accepted api_key")
    parser.add_argument(
        "--rate-limit", type=float, default=None, help="requests per second (default: none)"
    )
    parser.add_argument("--movies-csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--openapi-json", type=Path, default=DEFAULT_OPENAPI)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="[tmdb-offline] %(message)s", stream=sys.stderr)
    try:
        app = create_app(
            args.movies_csv,
            args.openapi_json,
            token=args.token,
            api_key=args.api_key,
            max_pages=args.max_pages,
            rate_limit_per_s=args.rate_limit,
        )
    except (DatasetMissingError, ValueError) as exc:
        print(f"cinepulse-tmdb-offline: {exc}", file=sys.stderr)
        return 2
    try:
        import uvicorn  # only the server needs it
    except ImportError:
        print("cinepulse-tmdb-offline: uvicorn is not installed", file=sys.stderr)
        return 2
    movies = len(app.state.tmdb.movies)
    log.info(
        "serving %d movies at http://%s:%d/3/ (max_pages=%d)",
        movies,
        args.host,
        args.port,
        args.max_pages,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
