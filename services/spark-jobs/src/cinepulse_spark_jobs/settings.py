"""Settings of spark-jobs (``CINEPULSE_*`` variables; nested blocks use ``__``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from cinepulse_common.settings import CinepulseSettings, KafkaSettings, PostgresSettings


def _default_jars_dir() -> Path:
    from cinepulse_spark_jobs.jars import default_dir

    return default_dir(Path.home() / ".cache" / "cinepulse")


class SparkJobsSettings(CinepulseSettings):
    #: the streaming job's source; the aggregates read only PostgreSQL, and the chart gives
    #: their pods no Kafka settings (nor a NetworkPolicy rule to reach it)
    kafka: KafkaSettings | None = None
    postgres: PostgresSettings
    master: str = Field(
        "local[2]", description="Spark master; empty under spark-submit (the operator's)"
    )
    jars_dir: Path = Field(
        default_factory=_default_jars_dir,
        description="the Kafka connector and JDBC jars (image: baked in; local: make setup)",
    )
    checkpoint_dir: Path = Field(
        Path("/var/lib/cinepulse/checkpoints"),
        description="streaming checkpoints, one sub-folder per query (a PVC in the cluster)",
    )
    shuffle_partitions: int = Field(2, ge=1)
    batch_partitions: int = Field(
        2, ge=1, description="partitions a micro-batch is coalesced to (about the cores)"
    )
    max_offsets_per_trigger: int = Field(
        50_000, ge=1, description="records read per micro-batch at most (bounds its memory)"
    )
    aggregate_margin_s: float = Field(
        900,
        ge=0,
        description="aggregates: facts ingested this long before the last run started are "
        "looked at again (a writer's transaction open across that start commits later)",
    )
    trigger_interval_s: float = Field(
        0, ge=0, description="seconds between micro-batches; 0: start the next one at once"
    )
    metrics_port: int = Field(9108, ge=0, le=65535, description="/metrics of the driver; 0: off")
    pushgateway_url: str | None = Field(
        None,
        description="Prometheus Pushgateway: a query's data-loss stop is pushed there, so its "
        "alert outlives the driver that exits on it",
    )
