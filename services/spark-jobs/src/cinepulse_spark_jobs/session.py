"""The SparkSession every job uses: the project's jars on the class path, small defaults."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from cinepulse_common.settings import PostgresSettings
from cinepulse_spark_jobs.jars import needed_jars
from cinepulse_spark_jobs.settings import SparkJobsSettings


def make_spark(settings: SparkJobsSettings, app_name: str) -> SparkSession:
    jars = ",".join(str(p) for p in needed_jars(settings.jars_dir))
    builder = SparkSession.builder.appName(app_name)
    if settings.master:  # empty under spark-submit (the operator sets the master)
        # local mode: the Python workers run this interpreter (its packages), not `python3`
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.master(settings.master)
    builder = (
        builder.config("spark.jars", jars)
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.streaming.stopGracefullyOnShutdown", "true")
    )
    return builder.getOrCreate()


def jdbc_options(pg: PostgresSettings) -> dict[str, str]:
    """The PostgreSQL JDBC options of a libpq DSN (url, user, password, driver)."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(pg.dsn.get_secret_value())
    host = str(parts.get("host") or "localhost").split(",")[0]
    port = str(parts.get("port") or "5432").split(",")[0]
    options = {
        "url": f"jdbc:postgresql://{host}:{port}/{parts.get('dbname') or ''}",
        "driver": "org.postgresql.Driver",
        "ApplicationName": pg.application_name,
    }
    for key in ("user", "password", "sslmode"):
        if parts.get(key):
            options[key] = str(parts[key])
    return options
