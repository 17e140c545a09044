"""Prometheus metrics of the recommender (names start ``cinepulse_recommender_``); created
once per process so that building several apps (tests) does not register them twice."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Info

from cinepulse_common.observability import HttpMetrics

HTTP = HttpMetrics("cinepulse_recommender")
ANSWERS = Counter(
    "cinepulse_recommender_answers_total",
    "Answers by endpoint, strategy (model, popular, popular_in_genre) and path "
    "(precomputed, scored, popular)",
    ["endpoint", "strategy", "path"],
)
MODEL = Info("cinepulse_recommender_model", "The model version being served")
MODEL_AGE = Gauge(
    "cinepulse_recommender_model_age_seconds",
    "Seconds since the served model was trained (NaN: no model, popularity only)",
)
MODEL_LOADED_AT = Gauge(
    "cinepulse_recommender_model_loaded_timestamp_seconds", "Unix time the served model was loaded"
)
SWAPS = Counter("cinepulse_recommender_model_swaps_total", "Model versions swapped in")
LOAD_ERRORS = Counter(
    "cinepulse_recommender_model_load_errors_total",
    "Registry polls or model loads that failed (the served model stays)",
)
HISTORY_READS = Counter(
    "cinepulse_recommender_history_reads_total",
    "Users' histories wanted at request time, by outcome: cached (read within history.ttl_s), "
    "read (from the facts), failed (timeout or database error: the precomputed answer, "
    "strategy model_stale), skipped (within a second of a failed read: model_stale too)",
    ["outcome"],
)
