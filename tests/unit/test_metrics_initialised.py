"""Counters whose label values are known in advance start at 0, so dashboards show 0 rather
than "no data" and rate() counts the first increments (a series that first appears at N
loses those N): the gateway's own Kafka error codes, the archiver's dead-letter codes and
MongoDB outage errors."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest


def test_gateway_and_archiver_error_counters_start_at_zero() -> None:
    from cinepulse_archiver import metrics as archiver
    from cinepulse_archiver.documents import DEAD_LETTER_CODES
    from cinepulse_event_gateway import metrics as gateway

    assert gateway.KAFKA_ERRORS and archiver.DEAD_LETTERED  # registered on import
    text = generate_latest(REGISTRY).decode()
    for code in ("QUEUE_FULL", "ACK_TIMEOUT"):
        assert f'cinepulse_gateway_kafka_errors_total{{code="{code}"}} 0.0' in text
    for code in DEAD_LETTER_CODES:
        assert f'cinepulse_archiver_dead_lettered_total{{code="{code}"}} 0.0' in text
    for error in archiver.MONGO_OUTAGE_ERRORS:
        assert f'cinepulse_archiver_mongo_errors_total{{error="{error}"}} 0.0' in text
