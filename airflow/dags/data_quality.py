"""data_quality: every event of an hour accounted for in every copy. One window of events
is reconciled end to end (acknowledged by the gateway, Kafka offsets, MongoDB raw
documents, PostgreSQL facts plus quarantine) with ``cinepulse-quality reconcile --from
--to``. The window is the newest clock hour (``quality_window_s``) that ended at least
``quality_settle_s`` before the run's trigger time, so Spark and the archiver have caught
up; consecutive runs reconcile consecutive hours. Drift (exit 1) and bad configuration
(exit 2) fail the task at once, without retries (the data, not the attempt, is wrong), and
the failure alert fires; the command's table of differences and its JSON summary are in the
task log. An unreachable store (exit 4) is retried with backoff."""

from __future__ import annotations

import pendulum

from cinepulse_airflow import alerts, config, pods, windows

cfg = config.load()
WINDOW = "{{ window(data_interval_end)[%d] }}"


def window(at: pendulum.DateTime) -> tuple[str, str]:
    return windows.settled_window(at, int(cfg["quality_settle_s"]), int(cfg["quality_window_s"]))


with alerts.cinepulse_dag(
    cfg,
    "data_quality",
    __doc__,
    tags=["quality"],
    user_defined_macros={"window": window},
) as dag:
    pods.pod_task(
        cfg,
        task_id="reconcile",
        component="quality",
        arguments=["reconcile", "--from", WINDOW % 0, "--to", WINDOW % 1],
        fail_fast_exit_codes=(1, 2),  # README "Data quality": drift, bad configuration
    )
