"""Prometheus metrics of tmdb-fetcher (names start ``cinepulse_tmdb_``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

#: a registry of its own: a batch job pushes exactly these to the Pushgateway
REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "cinepulse_tmdb_requests_total",
    "TMDB API answers, by endpoint and HTTP status (or 'error' for no answer)",
    ["endpoint", "status"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "cinepulse_tmdb_retries_total",
    "Requests retried, by reason (429, 5xx, timeout, connection, malformed)",
    ["reason"],
    registry=REGISTRY,
)
RATE_LIMIT_WAIT = Counter(
    "cinepulse_tmdb_rate_limit_wait_seconds_total",
    "Time spent waiting for the client-side rate limiter",
    registry=REGISTRY,
)
BACKOFF_WAIT = Counter(
    "cinepulse_tmdb_backoff_wait_seconds_total",
    "Time spent waiting before retries (Retry-After or backoff)",
    registry=REGISTRY,
)
MOVIES = Counter(
    "cinepulse_tmdb_movies_total",
    "Movies by outcome: fetched, updated (new content written), unchanged, not_found, "
    "malformed, repaired",
    ["outcome"],
    registry=REGISTRY,
)
