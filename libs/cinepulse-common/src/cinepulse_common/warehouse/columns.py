"""The column contracts of the load step: the fact tables' columns, and the rows an engine
hands over (modelled events, quarantined rows, movies), each with its PostgreSQL type."""

from __future__ import annotations

#: columns every fact table shares, in order
FACT_BASE: tuple[str, ...] = (
    "event_id",
    "user_id",
    "movie_id",
    "date_key",
    "occurred_at",
    "received_at",
    "session_id",
    "source_topic",
    "source_partition",
    "source_offset",
)
#: each event type's own fact columns
FACT_EXTRA: dict[str, tuple[str, ...]] = {
    "watch": ("position_seconds", "duration_seconds", "completion_ratio", "completed"),
    "rate": ("rating",),
    "comment": ("comment_text", "emotion", "sentiment", "emotion_scores", "classifier_version"),
    "click": ("target",),
}
FACT_TABLE: dict[str, str] = {
    "watch": "fact_watch",
    "rate": "fact_rating",
    "comment": "fact_comment",
    "click": "fact_click",
}
#: one modelled event, as an engine hands it over (name, PostgreSQL type)
EVENT_COLUMN_TYPES: tuple[tuple[str, str], ...] = (
    ("event_id", "uuid"),
    ("event_type", "text"),
    ("user_id", "text"),
    ("movie_id", "bigint"),
    ("date_key", "integer"),
    ("occurred_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("session_id", "text"),
    ("source_topic", "text"),
    ("source_partition", "integer"),
    ("source_offset", "bigint"),
    ("payload", "jsonb"),
    ("position_seconds", "numeric(10, 2)"),
    ("duration_seconds", "numeric(10, 2)"),
    ("completion_ratio", "numeric(5, 4)"),
    ("completed", "boolean"),
    ("rating", "numeric(2, 1)"),
    ("comment_text", "text"),
    ("emotion", "text"),
    ("sentiment", "real"),
    ("emotion_scores", "jsonb"),
    ("classifier_version", "text"),
    ("target", "text"),
)
EVENT_COLUMNS: tuple[str, ...] = tuple(name for name, _ in EVENT_COLUMN_TYPES)
QUARANTINE_COLUMN_TYPES: tuple[tuple[str, str], ...] = (
    ("event_id", "uuid"),
    ("event_type", "text"),
    ("source_topic", "text"),
    ("source_partition", "integer"),
    ("source_offset", "bigint"),
    ("raw", "text"),
    ("rule", "text"),
    ("reason", "text"),
)
QUARANTINE_COLUMNS: tuple[str, ...] = tuple(name for name, _ in QUARANTINE_COLUMN_TYPES)

#: one movie as an engine hands it over (lists as JSON arrays of {id, name[, origin_country]};
#: ``fetched_at``, when TMDB was fetched, orders the versions of a movie: None when unknown)
MOVIE_COLUMN_TYPES: tuple[tuple[str, str], ...] = (
    ("movie_id", "bigint"),
    ("imdb_id", "text"),
    ("title", "text"),
    ("original_title", "text"),
    ("original_language", "text"),
    ("overview", "text"),
    ("tagline", "text"),
    ("status", "text"),
    ("release_date", "date"),
    ("runtime_minutes", "integer"),
    ("budget", "bigint"),
    ("revenue", "bigint"),
    ("popularity", "double precision"),
    ("vote_average", "numeric(3, 1)"),
    ("vote_count", "integer"),
    ("adult", "boolean"),
    ("fetched_at", "timestamptz"),
    ("genres", "jsonb"),
    ("keywords", "jsonb"),
    ("companies", "jsonb"),
)
MOVIE_COLUMNS: tuple[str, ...] = tuple(name for name, _ in MOVIE_COLUMN_TYPES)
DIM_MOVIE_COLUMNS: tuple[str, ...] = MOVIE_COLUMNS[:-3]
