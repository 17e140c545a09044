"""The offline TMDB app (:func:`create_app`) and its command line (:func:`main`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cinepulse_devstack.tmdb_offline.data import (
    DEFAULT_CSV,
    DEFAULT_OPENAPI,
    DatasetMissingError,
    Json,
    Movie,
    Recorded,
    load_movies,
    load_recorded,
    movies_from_rows,
)
from cinepulse_devstack.tmdb_offline.errors import NOT_FOUND, TmdbError
from cinepulse_devstack.tmdb_offline.server import OfflineTmdb
from cinepulse_devstack.tmdb_offline.synthetic import SEED, SIZE, minimal_recorded, synthetic_rows

log = logging.getLogger("cinepulse.tmdb_offline")

DEFAULT_TOKEN = "offline-read-token"  # noqa: S105 - a fixed demo credential, not a secret
DEFAULT_API_KEY = "offline-api-key"
DEFAULT_PORT = 18300
#: ``auto``: the TMDB 5000 set when it is there, else the synthetic catalogue
CATALOGUES = ("auto", "tmdb-5000", "synthetic")


@dataclass(frozen=True)
class Catalogue:
    """The movies the server answers with and the response shapes it copies."""

    name: str  # "tmdb-5000" or "synthetic"
    movies: dict[int, Movie]
    recorded: Recorded
    #: "tmdb-api" (the recorded examples) or "minimal" (written in synthetic.py)
    shapes: str

    def describe(self) -> str:
        what = (
            "the TMDB 5000 set"
            if self.name == "tmdb-5000"
            else "a synthetic catalogue (the TMDB sets are not here)"
        )
        return f"{len(self.movies):,} movies of {what}, {self.shapes} response shapes"


def load_catalogue(
    movies_csv: Path | None = None,
    openapi_json: Path | None = None,
    *,
    catalogue: str = "auto",
    synthetic_size: int = SIZE,
    synthetic_seed: int = SEED,
) -> Catalogue:
    """The movies and response shapes to serve. ``catalogue="auto"``: the CSV (``movies_csv``,
    else the data set's) when given or present, else :func:`synthetic_rows`. The shapes: the
    recorded examples (``openapi_json``, else the data set's when present and the movies are
    the data set's), else :func:`minimal_recorded`. A file passed explicitly must exist
    (:class:`DatasetMissingError`)."""
    if catalogue not in CATALOGUES:
        raise ValueError(f"unknown catalogue {catalogue!r}; expected one of {CATALOGUES}")
    if catalogue == "auto":
        use_csv = movies_csv is not None or DEFAULT_CSV.is_file()
        catalogue = "tmdb-5000" if use_csv else "synthetic"
    if catalogue == "synthetic" and movies_csv is not None:
        raise ValueError("a movies CSV and the synthetic catalogue exclude each other")
    if openapi_json is not None:
        recorded, shapes = load_recorded(Path(openapi_json)), "tmdb-api"
    elif catalogue == "tmdb-5000" and DEFAULT_OPENAPI.is_file():
        recorded, shapes = load_recorded(DEFAULT_OPENAPI), "tmdb-api"
    else:
        recorded, shapes = minimal_recorded(), "minimal"
    if catalogue == "synthetic":
        rows = synthetic_rows(synthetic_size, synthetic_seed)
        movies = movies_from_rows(rows, recorded.details_keys)
    else:
        movies = load_movies(Path(movies_csv or DEFAULT_CSV), recorded.details_keys)
    return Catalogue(catalogue, movies, recorded, shapes)


def create_app(
    movies_csv: Path | None = None,
    openapi_json: Path | None = None,
    *,
    catalogue: str = "auto",
    synthetic_size: int = SIZE,
    token: str = DEFAULT_TOKEN,
    api_key: str = DEFAULT_API_KEY,
    max_pages: int = 500,
    rate_limit_per_s: float | None = None,
    cap_total_pages: bool = True,
    changes_max_days: int | None = None,
) -> Starlette:
    """The offline TMDB app, answering from :func:`load_catalogue` (the TMDB sets when they
    are there, else a synthetic catalogue). Raises :class:`DatasetMissingError` if a file
    passed explicitly (or a data set asked for by ``catalogue``) is missing.

    ``max_pages``: the highest page discover and changes serve (TMDB: 500); above it, HTTP 400
    with status_code 22. ``cap_total_pages``: report discover's ``total_pages`` as
    ``min(pages, max_pages)``. ``rate_limit_per_s``: requests per second over which /3/ answers
    429 with ``Retry-After: 1`` (None: no limit). ``changes_max_days``: refuse longer
    /3/movie/changes windows (TMDB documents 14 days), None: no limit.
    """
    loaded = load_catalogue(
        movies_csv, openapi_json, catalogue=catalogue, synthetic_size=synthetic_size
    )
    tmdb = OfflineTmdb(
        loaded.movies,
        loaded.recorded,
        token=token,
        api_key=api_key,
        max_pages=max_pages,
        rate_limit_per_s=rate_limit_per_s,
        cap_total_pages=cap_total_pages,
        changes_max_days=changes_max_days,
        catalogue=loaded.name,
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
    app.state.catalogue = loaded
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
    parser.add_argument(
        "--catalogue",
        choices=CATALOGUES,
        default="auto",
        help="the movies: the TMDB 5000 set, a seeded synthetic catalogue, or auto (the set "
        "when it is there, else synthetic; default)",
    )
    parser.add_argument(
        "--synthetic-movies", type=int, default=SIZE, help=f"synthetic catalogue size ({SIZE})"
    )
    parser.add_argument(
        "--movies-csv", type=Path, default=None, help=f"default: {DEFAULT_CSV} when present"
    )
    parser.add_argument(
        "--openapi-json",
        type=Path,
        default=None,
        help=f"the recorded examples (default: {DEFAULT_OPENAPI} when present)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="[tmdb-offline] %(message)s", stream=sys.stderr)
    try:
        app = create_app(
            args.movies_csv,
            args.openapi_json,
            catalogue=args.catalogue,
            synthetic_size=args.synthetic_movies,
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
    log.info(
        "serving %s at http://%s:%d/3/ (max_pages=%d)",
        app.state.catalogue.describe(),
        args.host,
        args.port,
        args.max_pages,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
