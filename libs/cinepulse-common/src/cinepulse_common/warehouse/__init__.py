"""The load step into the PostgreSQL star schema, shared by every engine (Spark, pandas).

Extract and transform differ per engine; loading does not. An engine hands over *modelled
event rows* (validated, deduplicated, normalised; one tuple per event in
:data:`EVENT_COLUMNS` order) and *quarantined rows* (:data:`QUARANTINE_COLUMNS`), and
:func:`load_events` writes them in the caller's transaction:

* the rows are COPYed into temporary tables (the fast path into PostgreSQL), then
* ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` into staging, the facts and the
  quarantine, keyed on ``event_id`` (the quarantine on the source position): a replayed
  batch writes nothing twice, and a fact already written (by Spark, or a promoted run) is
  never overwritten;
* staging is the event-id registry across event types (:mod:`.registry`): a fact only for
  an id staged by the same load; a copy with other content is quarantined
  (``event_id_conflict``), an exact resend dropped;
* dimensions "as they appear": ``dim_date`` rows for new dates, ``dim_user`` first/last
  seen (widened, never narrowed).

``schema='fallback'`` (with a ``run_id``) writes a pandas-fallback run apart: its own
registry (``fallback.stg_user_logs``), facts and quarantine, no dimensions (promotion adds
those, and registers the run's ids in the main registry).
:func:`promote_run` moves one such run into the main facts (``--dry-run``: only counts); a
chunked job needs no check of its own for what an earlier chunk wrote (the run's registry
holds it).

Movies (the ``movie`` topic) load through :func:`load_movies`: SCD type 1 upserts of
``dim_movie`` (a changed movie overwrites its row; an unchanged one is not touched), the
genre, keyword and company dimensions, and the movie's bridges replaced by its current lists;
``schema='fallback'`` (with a ``run_id``) keeps a fallback run's movies apart, and
:func:`promote_run` upserts them with the same load. Versions are ordered by ``fetched_at``
everywhere: a version older than the stored one (or without a fetch time, when the stored
one has one) changes neither the row nor its bridges.

Where each part lives: the column contracts in :mod:`.columns`, the event load in
:mod:`.load`, a fallback run's promotion in :mod:`.promotion`, the movie upserts in
:mod:`.movies`; this package exports them all.
"""

from __future__ import annotations

from cinepulse_common.warehouse.columns import (
    DIM_MOVIE_COLUMNS,
    EVENT_COLUMN_TYPES,
    EVENT_COLUMNS,
    FACT_BASE,
    FACT_EXTRA,
    FACT_TABLE,
    MOVIE_COLUMN_TYPES,
    MOVIE_COLUMNS,
    QUARANTINE_COLUMN_TYPES,
    QUARANTINE_COLUMNS,
)
from cinepulse_common.warehouse.load import (
    batch_tables,
    ensure_batch_tables,
    load_events,
    load_events_from_tables,
)
from cinepulse_common.warehouse.movies import load_movies
from cinepulse_common.warehouse.promotion import promote_run

__all__ = [
    "DIM_MOVIE_COLUMNS",
    "EVENT_COLUMNS",
    "EVENT_COLUMN_TYPES",
    "FACT_BASE",
    "FACT_EXTRA",
    "FACT_TABLE",
    "MOVIE_COLUMNS",
    "MOVIE_COLUMN_TYPES",
    "QUARANTINE_COLUMNS",
    "QUARANTINE_COLUMN_TYPES",
    "batch_tables",
    "ensure_batch_tables",
    "load_events",
    "load_events_from_tables",
    "load_movies",
    "promote_run",
]
