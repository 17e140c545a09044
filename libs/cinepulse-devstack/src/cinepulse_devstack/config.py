"""Local stack settings (``CINEPULSE_STACK_*``): where it lives, its ports and versions."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cinepulse_common.paths import default_cache, repo_root

#: the Helm release and namespace the chart checks render (``chart.render``); the local
#: Prometheus targets carry the labels the chart's monitors give in that release/namespace
CHART_RELEASE = "cp"
CHART_NAMESPACE = "cinepulse"


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CINEPULSE_STACK_", extra="ignore")

    root: Path = Field(default_factory=lambda: repo_root() / ".stack")
    cache: Path = Field(default_factory=default_cache)
    host: str = "127.0.0.1"

    kafka_version: str = "3.9.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap: str = "768m"
    kafka_partitions: int = 3

    postgres_port: int = 15432
    postgres_user: str = "cinepulse"
    postgres_db: str = "cinepulse"

    mongo_port: int = 27018
    ferretdb_version: str = "v1.24.2"
    ferretdb_debug_port: int = 18088

    prometheus_port: int = 19090
    pushgateway_port: int = 19091
    gateway_port: int = 18080
    archiver_port: int = 16066
    tmdb_offline_port: int = 18300
    spark_metrics_port: int = 19108
    api_port: int = 18000
    recommender_port: int = 18001
    explorer_port: int = 18501
    #: each service's /metrics on a port of its own (CINEPULSE_METRICS_PORT), as in the chart
    gateway_metrics_port: int = 19461
    archiver_metrics_port: int = 19462
    api_metrics_port: int = 19463
    recommender_metrics_port: int = 19464
    explorer_metrics_port: int = 19465
    prometheus_scrape_interval: str = "5s"

    start_timeout_s: float = 120.0
