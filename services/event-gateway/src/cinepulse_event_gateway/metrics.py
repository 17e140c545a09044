"""Prometheus metrics of the event gateway (names start ``cinepulse_gateway_``)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from cinepulse_common.observability import HttpMetrics

HTTP = HttpMetrics("cinepulse_gateway")

EVENTS_ACCEPTED = Counter(
    "cinepulse_gateway_events_accepted_total",
    "Events acknowledged by Kafka and answered as accepted, by event type",
    ["event_type"],
)
EVENTS_REJECTED = Counter(
    "cinepulse_gateway_events_rejected_total",
    "Events not accepted, by event type and reason (validation error type, "
    "kafka_unavailable, rate_limited, user_mismatch: in a request holding an event for "
    "another user than its user token's, ...)",
    ["event_type", "reason"],
)
PRODUCE_LATENCY = Histogram(
    "cinepulse_gateway_produce_latency_seconds",
    "Time from produce() to Kafka's acknowledgement (acks=all)",
    buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
KAFKA_ERRORS = Counter(
    "cinepulse_gateway_kafka_errors_total",
    "Kafka client errors (librdkafka error codes, QUEUE_FULL, ACK_TIMEOUT)",
    ["code"],
)
# The codes the gateway itself reports start at 0: the dashboard shows 0 rather than "no
# data", and rate() sees the first errors (a series that first appears at N loses those N).
for _code in ("QUEUE_FULL", "ACK_TIMEOUT"):
    KAFKA_ERRORS.labels(_code)
CONCURRENCY_LIMITED = Counter(
    "cinepulse_gateway_concurrency_limited_total",
    "Requests answered 503 at once: limits.max_concurrent_requests were being handled already",
)
BODY_READ_TIMEOUTS = Counter(
    "cinepulse_gateway_body_read_timeouts_total",
    "Requests answered 408: the body did not arrive within limits.body_read_timeout_s",
)
AUTH_REFUSALS = Counter(
    "cinepulse_gateway_auth_refusals_total",
    "Event requests refused by who sent them, before anything was published, by reason: "
    "missing_write_key, invalid_write_key (401); for a frontend write key "
    "missing_user_token, invalid_user_token, expired_user_token (401), "
    "no_user_token_secret (403: none configured), user_mismatch (403: an event for another "
    "user than the token's)",
    ["reason"],
)
#: every reason starts at 0 (as KAFKA_ERRORS: rate() sees the first refusals)
AUTH_REFUSAL_REASONS = (
    "missing_write_key",
    "invalid_write_key",
    "missing_user_token",
    "invalid_user_token",
    "expired_user_token",
    "no_user_token_secret",
    "user_mismatch",
)
for _reason in AUTH_REFUSAL_REASONS:
    AUTH_REFUSALS.labels(_reason)
PRODUCER_QUEUE = Gauge(
    "cinepulse_gateway_producer_queue_messages",
    "Records queued in the producer, not yet acknowledged",
)

KAFKA_REACHABLE = Gauge(
    "cinepulse_gateway_kafka_reachable",
    "1 if Kafka answered the gateway's last metadata request (every 10 s), else 0; "
    "readiness does not follow it: with Kafka down the gateway answers 503 + Retry-After",
)

_ACCEPTED_CHILDREN: dict[str, Any] = {}


def accepted(event_type: str) -> None:
    """Count one accepted event (label children cached: this is the hot path)."""
    child = _ACCEPTED_CHILDREN.get(event_type)
    if child is None:
        child = _ACCEPTED_CHILDREN[event_type] = EVENTS_ACCEPTED.labels(event_type)
    child.inc()
