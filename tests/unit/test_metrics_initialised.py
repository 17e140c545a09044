"""Counters whose label values are known in advance start at 0, so dashboards show 0 rather
than "no data" and rate() counts the first increments (a series that first appears at N
loses those N): the gateway's own Kafka error codes, the archiver's dead-letter codes,
MongoDB errors and retries, released batches."""

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
    # (the sink's own tests, run earlier in the same process, may have counted some already:
    # the series must exist, whatever its value)
    for error in (*archiver.MONGO_OUTAGE_ERRORS, *archiver.MONGO_WRITE_ERRORS):
        assert f'cinepulse_archiver_mongo_errors_total{{error="{error}"}} ' in text
    for operation in archiver.MONGO_OPERATIONS:
        assert f'cinepulse_archiver_mongo_retries_total{{operation="{operation}"}} ' in text
    for reason in archiver.RELEASE_REASONS:
        assert f'cinepulse_archiver_batches_released_total{{reason="{reason}"}} ' in text
