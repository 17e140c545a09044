"""An offline TMDB API v3 server for demos and tests: recorded data, TMDB's paths and bodies.

A real TMDB client runs against it unchanged; only the base URL differs. It answers from

* ``tmdb-5000/tmdb_5000_movies.csv`` (3,000 real movies): movie details, keywords, discover;
* ``tmdb-api/tmdb-api-openapi.json`` (TMDB's OpenAPI description with a recorded example
  response per path): the response shapes (field names and order), the genre list verbatim.

Both are read in place from a local data sets mirror (``$CINEPULSE_DATASETS``, else
``<repo>/../shared/datasets``; ``cinepulse-data where`` shows which) and never copied. They
have no public download: without them (``--catalogue auto``, the default) it answers from a
seeded synthetic catalogue of 300 movies with minimal response shapes (``synthetic``; the
demo's synthetic events use the same movies). ``--catalogue synthetic`` asks for it anyway.

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

Run it: ``cinepulse-tmdb-offline --port 18300 --max-pages 5 [--catalogue synthetic]``.

Modules: ``data`` (the recorded data), ``synthetic`` (the catalogue without it), ``errors`` (TMDB's error answers), ``faults`` (what the
admin endpoints steer), ``server`` (the endpoints), ``app`` (:func:`create_app`, :func:`main`).
"""

from cinepulse_devstack.tmdb_offline.app import (
    CATALOGUES,
    DEFAULT_API_KEY,
    DEFAULT_PORT,
    DEFAULT_TOKEN,
    Catalogue,
    create_app,
    load_catalogue,
    main,
)
from cinepulse_devstack.tmdb_offline.data import (
    DEFAULT_CSV,
    DEFAULT_OPENAPI,
    ENGLISH_LANGUAGE_NAMES,
    DatasetMissingError,
    Json,
    Movie,
    Recorded,
    json_list,
    load_movies,
    load_recorded,
    movie_from_row,
    movies_from_rows,
    recorded_example,
    require_dataset,
)
from cinepulse_devstack.tmdb_offline.errors import (
    INVALID_INPUT,
    NOT_FOUND,
    RATE_LIMITED,
    SERVER_ERRORS,
    UNAUTHORIZED,
    TmdbError,
)
from cinepulse_devstack.tmdb_offline.faults import (
    DEFAULT_FAULT_PATHS,
    FAULT_ORDER,
    MALFORMED_KINDS,
    MISSING_FIELDS,
    NULLED_FIELDS,
    Fault,
    State,
    malform,
    parse_faults,
    parse_instant,
)
from cinepulse_devstack.tmdb_offline.server import (
    CHANGES_PAGE_SIZE,
    PAGE_SIZE,
    SORT_FIELDS,
    OfflineTmdb,
)
from cinepulse_devstack.tmdb_offline.synthetic import minimal_recorded, synthetic_rows

__all__ = [
    "CATALOGUES",
    "CHANGES_PAGE_SIZE",
    "DEFAULT_API_KEY",
    "DEFAULT_CSV",
    "DEFAULT_FAULT_PATHS",
    "DEFAULT_OPENAPI",
    "DEFAULT_PORT",
    "DEFAULT_TOKEN",
    "ENGLISH_LANGUAGE_NAMES",
    "FAULT_ORDER",
    "INVALID_INPUT",
    "MALFORMED_KINDS",
    "MISSING_FIELDS",
    "NOT_FOUND",
    "NULLED_FIELDS",
    "PAGE_SIZE",
    "RATE_LIMITED",
    "SERVER_ERRORS",
    "SORT_FIELDS",
    "UNAUTHORIZED",
    "Catalogue",
    "DatasetMissingError",
    "Fault",
    "Json",
    "Movie",
    "OfflineTmdb",
    "Recorded",
    "State",
    "TmdbError",
    "create_app",
    "json_list",
    "load_catalogue",
    "load_movies",
    "load_recorded",
    "main",
    "malform",
    "minimal_recorded",
    "movie_from_row",
    "movies_from_rows",
    "parse_faults",
    "parse_instant",
    "recorded_example",
    "require_dataset",
    "synthetic_rows",
]
