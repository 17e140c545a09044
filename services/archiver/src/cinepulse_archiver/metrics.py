"""Prometheus metrics of the archiver (names start ``cinepulse_archiver_``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from cinepulse_archiver.documents import DEAD_LETTER_CODES

#: the errors a MongoDB outage raises (pymongo's ConnectionFailure family)
MONGO_OUTAGE_ERRORS = ("AutoReconnect", "NetworkTimeout", "ServerSelectionTimeoutError")
#: write errors of an insert that reached MongoDB, retried (cinepulse_archiver.sink)
MONGO_WRITE_ERRORS = ("TransientWriteError", "WriteConcernError")
#: the MongoDB operations the archiver retries (cinepulse_archiver.sink)
MONGO_OPERATIONS = ("insert", "lookup", "create_index")
#: why a batch MongoDB had not stored was given back unacknowledged (cinepulse_archiver.agents)
RELEASE_REASONS = ("rebalance", "stopping")

CONSUMED = Counter("cinepulse_archiver_consumed_total", "Kafka records read, by topic", ["topic"])
WRITTEN = Counter(
    "cinepulse_archiver_written_total",
    "Documents newly written to MongoDB, by collection",
    ["collection"],
)
DUPLICATES = Counter(
    "cinepulse_archiver_duplicates_total",
    "Records already archived (a redelivery after a restart): nothing written",
    ["collection"],
)
DEAD_LETTERED = Counter(
    "cinepulse_archiver_dead_lettered_total",
    "Records sent to the dead-letter topic, by reason code",
    ["code"],
)
MONGO_ERRORS = Counter(
    "cinepulse_archiver_mongo_errors_total",
    "Failed MongoDB operations, by error (retried until they succeed)",
    ["error"],
)
MONGO_RETRIES = Counter(
    "cinepulse_archiver_mongo_retries_total",
    "MongoDB operations attempted again after a transient or write-concern error (with "
    "backoff; the batch's offsets stay uncommitted meanwhile), by operation",
    ["operation"],
)
BATCHES_RELEASED = Counter(
    "cinepulse_archiver_batches_released_total",
    "Batches MongoDB had not stored, given back unacknowledged when a rebalance or a stop "
    "interrupted their retries (read again afterwards), by reason",
    ["reason"],
)
MESSAGES_LET_GO = Counter(
    "cinepulse_archiver_messages_let_go_total",
    "Messages faust's rebalance or stop waited for in vain (handed to both agents, one copy "
    "dropped by the rebalance), let go unacknowledged after a few seconds: read again",
)
GAPS = Counter(
    "cinepulse_archiver_gaps_total",
    "Offset ranges the consumer skipped (around a rebalance), read again from Kafka",
    ["topic"],
)
GAP_RECORDS = Counter(
    "cinepulse_archiver_gap_records_total",
    "Records read again from Kafka because the consumer skipped them, then archived",
    ["topic"],
)
BATCH_SECONDS = Histogram(
    "cinepulse_archiver_batch_seconds",
    "Time to archive one batch (MongoDB write and dead letters)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# Label values known in advance start at 0: the dashboard shows 0 rather than "no data", and
# rate() sees the first dead letters or errors (a series that first appears at N loses them).
for _code in DEAD_LETTER_CODES:
    DEAD_LETTERED.labels(_code)
for _error in (*MONGO_OUTAGE_ERRORS, *MONGO_WRITE_ERRORS):
    MONGO_ERRORS.labels(_error)
for _operation in MONGO_OPERATIONS:
    MONGO_RETRIES.labels(_operation)
for _reason in RELEASE_REASONS:
    BATCHES_RELEASED.labels(_reason)
LAG = Gauge(
    "cinepulse_archiver_consumer_lag",
    "Records in the partition not yet archived (high watermark - next offset)",
    ["topic", "partition"],
)
