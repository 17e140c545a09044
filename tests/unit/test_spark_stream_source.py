"""The streaming job's Kafka source: offsets gone from Kafka stop the query (never skipped)."""

from __future__ import annotations

from typing import Any

import pytest

from cinepulse_common.settings import KafkaSettings, PostgresSettings
from cinepulse_spark_jobs.settings import SparkJobsSettings
from cinepulse_spark_jobs.stream import (
    DATA_LOSS_RECOVERY,
    LandingLock,
    LandingLockLost,
    _source,
    is_data_loss,
    landing_lock_key,
    lock_held,
)


class Reader:
    def __init__(self) -> None:
        self.options: dict[str, str] = {}
        self.source: str | None = None

    def format(self, name: str) -> Reader:
        self.source = name
        return self

    def option(self, key: str, value: str) -> Reader:
        self.options[key] = value
        return self

    def load(self) -> Reader:
        return self


class FakeSpark:
    def __init__(self) -> None:
        self.readStream = Reader()


def test_the_kafka_source_fails_on_data_loss() -> None:
    settings = SparkJobsSettings(
        kafka=KafkaSettings(bootstrap_servers="k:9092"),
        postgres=PostgresSettings(dsn="postgresql://u:p@h/db"),
    )
    spark: Any = FakeSpark()
    _source(spark, settings, ["user_rating_log"], 1000)
    reader = spark.readStream
    assert reader.source == "kafka"
    assert reader.options["failOnDataLoss"] == "true"
    assert reader.options["startingOffsets"] == "earliest"


def test_the_data_loss_stop_is_recognised_and_names_the_recovery() -> None:
    error = (
        "Partition user_rating_log-0's offset was changed from 120 to 40, some data may have "
        "been missed. Some data may have been lost because they are not available in Kafka "
        "any more; ... If you don't want your streaming query to fail on such cases, set the "
        'source option "failOnDataLoss" to "false".'
    )
    assert is_data_loss(error)
    assert not is_data_loss("Connection to PostgreSQL refused")
    assert "cinepulse-fallback replay" in DATA_LOSS_RECOVERY


def test_the_landing_lock_key_is_stable_and_per_table_set() -> None:
    assert landing_lock_key("spark_batch") == landing_lock_key("spark_batch")
    assert landing_lock_key("spark_batch") != landing_lock_key("other_batch")
    assert -(2**63) <= landing_lock_key("spark_batch") < 2**63


class LocksView:
    """A connection answering the pg_locks query from a set of (classid, objid, pid)."""

    def __init__(self, held: set[tuple[int, int, int]]) -> None:
        self.held = held
        self.asked: list[tuple[str, tuple[int, ...]]] = []

    def execute(self, query: str, params: tuple[int, int, int]) -> LocksView:
        self.asked.append((query, params))
        self.row = (params in self.held,)
        return self

    def fetchone(self) -> tuple[bool]:
        return self.row


def test_the_landing_lock_is_checked_for_its_own_connection() -> None:
    key = landing_lock_key("spark_batch")
    split = ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)
    assert all(0 <= part < 2**32 for part in split)
    assert split[0] << 32 | split[1] == key & (2**64 - 1)
    conn = LocksView({(*split, 4242)})
    assert lock_held(conn, key, 4242)
    assert not lock_held(conn, key, 4243)  # another backend holds it: not ours
    assert not lock_held(conn, landing_lock_key("other_batch"), 4242)
    query = conn.asked[0][0]
    assert "pg_locks" in query and "advisory" in query and "granted" in query
    assert "objsubid = 1" in query


def test_a_lost_landing_lock_fails_the_batch() -> None:
    key = landing_lock_key("spark_batch")
    split = ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)
    LandingLock("spark_batch", key, 7).check(LocksView({(*split, 7)}))  # held: no error
    with pytest.raises(LandingLockLost, match=r"landing lock of 'spark_batch' was lost.*pid 7"):
        LandingLock("spark_batch", key, 7).check(LocksView(set()))
