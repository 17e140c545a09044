"""The SparkSession every job uses: the project's jars on the class path, small defaults."""

from __future__ import annotations

from pyspark.sql import SparkSession

from cinepulse_spark_jobs.jars import needed_jars
from cinepulse_spark_jobs.settings import SparkJobsSettings


def make_spark(settings: SparkJobsSettings, app_name: str) -> SparkSession:
    jars = ",".join(str(p) for p in needed_jars(settings.jars_dir))
    builder = SparkSession.builder.appName(app_name)
    if settings.master:  # empty under spark-submit (the operator sets the master)
        builder = builder.master(settings.master)
    builder = (
        builder.config("spark.jars", jars)
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.streaming.stopGracefullyOnShutdown", "true")
    )
    return builder.getOrCreate()
