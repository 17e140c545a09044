from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cinepulse_common import topics
from cinepulse_common.kafka import delete_topics, ensure_topics, make_admin
from cinepulse_common.mongo import make_client
from cinepulse_common.settings import KafkaSettings, MongoSettings, PostgresSettings
from cinepulse_devstack import Stack
from cinepulse_migrations.cli import upgrade

TEMPLATE_DB = "cinepulse_test_template"


def _uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The real local stack: started for this session, or reused if it is already up.
    Only what this session started is stopped at the end (CINEPULSE_KEEP_STACK=1 keeps it)."""
    with Stack().running() as s:
        yield s


@pytest.fixture(scope="session")
def migrated_template(stack: Stack) -> str:
    """A database migrated to head once per session; tests clone it (fast file copy)."""
    upgrade(stack.postgres.create_database(TEMPLATE_DB, replace=True), "head")
    return TEMPLATE_DB


def _create_db(stack: Stack, template: str | None) -> Iterator[str]:
    name = f"t_{_uid()}"
    try:
        yield stack.postgres.create_database(name, template=template)
    finally:
        stack.postgres.drop_database(name)


@pytest.fixture
def empty_pg_dsn(stack: Stack) -> Iterator[str]:
    """A fresh, unmigrated database of this test's own."""
    yield from _create_db(stack, None)


@pytest.fixture
def pg_settings(stack: Stack, migrated_template: str) -> Iterator[PostgresSettings]:
    """A migrated database of this test's own."""
    for dsn in _create_db(stack, migrated_template):
        yield PostgresSettings(dsn=dsn)  # type: ignore[arg-type]


@pytest.fixture
def kafka_settings(stack: Stack) -> Iterator[KafkaSettings]:
    """Kafka settings whose topic prefix is this test's own; the project topics exist."""
    s = KafkaSettings(bootstrap_servers=stack.kafka.bootstrap, topic_prefix=f"t{_uid()}.")
    admin = make_admin(s)
    names = [s.topic(t) for t in topics.ALL_TOPICS]
    ensure_topics(admin, names, partitions=3)
    yield s
    delete_topics(admin, names)


@pytest.fixture
def mongo_settings(stack: Stack) -> Iterator[MongoSettings]:
    """A MongoDB database of this test's own."""
    s = MongoSettings(url=stack.mongo.url, database=f"raw_t{_uid()}")  # type: ignore[arg-type]
    yield s
    with make_client(s) as client:
        client.drop_database(s.database)


@pytest.fixture(scope="session")
def spark_jars() -> list[str]:
    """The Spark jars (Kafka source, JDBC), or [] when make setup has not resolved them."""
    try:
        from cinepulse_spark_jobs.jars import JarsError, default_dir, needed_jars
    except ImportError:
        return []
    try:
        return [str(p) for p in needed_jars(default_dir(Path.home() / ".cache" / "cinepulse"))]
    except JarsError:
        return []


@pytest.fixture(scope="session")
def spark(spark_jars: list[str]) -> Iterator[Any]:
    """One local Spark session for the whole test session (with the jars when present)."""
    pyspark_sql = pytest.importorskip("pyspark.sql")
    # the Python workers run this interpreter (the project's venv), not whatever `python3` is
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        pyspark_sql.SparkSession.builder.master("local[2]")
        .appName("cinepulse-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
    )
    if spark_jars:
        builder = builder.config("spark.jars", ",".join(spark_jars))
    session = builder.getOrCreate()
    yield session
    session.stop()


@pytest.fixture
def spark_with_jars(spark: Any, spark_jars: list[str]) -> Any:
    if not spark_jars:
        pytest.skip("the Spark jars are not resolved (make setup)")
    return spark
