"""tmdb_ingest: TMDB movie metadata into MongoDB, Kafka and staging with the fetcher image.

Hourly: ``cinepulse-tmdb-fetcher incremental`` (TMDB's change feed since the watermark).
Once a day, the run of hour ``tmdb_full_load_hour``: ``cinepulse-tmdb-fetcher full`` instead
(a full load also covers what the incremental would). The trigger parameter ``load``
(``incremental`` or ``full``) overrides the choice. Runs never overlap. Exit codes 2 (bad
configuration) and 3 (invalid TMDB credential) fail at once; others are retried with
exponential backoff."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, task

from cinepulse_airflow import alerts, config, pods

cfg = config.load()
FAIL_FAST = (2, 3)  # README "TMDB fetcher": bad configuration, invalid credential

# one run at a time: the incremental watermark and a full load must not race
with alerts.cinepulse_dag(
    cfg,
    "tmdb_ingest",
    __doc__,
    tags=["tmdb", "ingest"],
    params={"load": Param("auto", enum=["auto", "incremental", "full"])},
) as dag:

    @task.branch
    def choose_load(**context: Any) -> str:
        load = context["params"]["load"]
        if load == "auto":
            hour = (context.get("data_interval_end") or pendulum.now("UTC")).in_tz("UTC").hour
            load = "full" if hour == int(cfg["tmdb_full_load_hour"]) else "incremental"
        return f"{load}_load"

    loads = [
        pods.pod_task(
            cfg,
            task_id=f"{load}_load",
            component="tmdb-fetcher",
            arguments=[load],
            fail_fast_exit_codes=FAIL_FAST,
        )
        for load in ("incremental", "full")
    ]
    choose_load() >> loads
