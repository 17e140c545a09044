"""The gateway benchmark's sizes and its design targets, in one place: the load, the two
ceilings and the table all read them (and the table's titles print them)."""

from __future__ import annotations

ROUNDS = 3  # trials per path; the median is reported
WARMUP_S = 2
TRIAL_S = 8
SINGLE_CONCURRENCY = 64
BATCH_CONCURRENCY = 8
BATCH_SIZE = 100
KAFKA_MESSAGES = 100_000
PARTITIONS = 3
#: targets from the gateway's design (reported, not enforced)
TARGET_SINGLE = 0.7
TARGET_BATCH = 0.5
TARGET_P99_MS = 50.0
#: the steady-load trial: events/s the gateway is offered, spread over this many clients
STEADY_RATE = 1000
STEADY_CONCURRENCY = 16
