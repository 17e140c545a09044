"""daily_aggregates: the daily aggregates the api reads, with the spark-jobs image.

``aggregate_day`` recomputes the day before the run's trigger time (``--from``/``--to``
that day, so a rerun or a backfill recomputes exactly that day); then ``aggregate_changed`` recomputes
every day whose facts changed since the last successful run (late events, promoted
fallback runs).

A KubernetesPodOperator running ``cinepulse-spark-jobs aggregate`` (Spark in local mode
inside the pod) rather than the SparkKubernetesOperator submitting the chart's aggregates
SparkApplication: a day of facts fits one pod, the task's state is the command's exit code,
the pod comes from the same template (security context, Secrets, resources) as every other
task, and Airflow needs no RBAC on the Spark operator's CRDs. The chart's schedule
(ScheduledSparkApplication, or a CronJob with spark.launcher=submit) stays for clusters that
run aggregates without Airflow; install the chart with ``airflow.enabled=true`` beside this
DAG so the chart schedules none.
Either way the command takes a PostgreSQL advisory lock: a second run at the same time exits
3 (retried by this task's backoff) without touching anything.
"""

from __future__ import annotations

from cinepulse_airflow import alerts, config, pods, windows

cfg = config.load()
DAY = "{{ previous_day(data_interval_end) }}"

# one run at a time: each day is replaced whole; two runs would redo each other's work
with alerts.cinepulse_dag(
    cfg,
    "daily_aggregates",
    __doc__,
    tags=["spark", "aggregates"],
    user_defined_macros={"previous_day": windows.previous_day},
) as dag:
    aggregate_day = pods.pod_task(
        cfg,
        task_id="aggregate_day",
        component="spark-jobs",
        arguments=["aggregate", "--from", DAY, "--to", DAY],
        fail_fast_exit_codes=(2,),
    )
    aggregate_changed = pods.pod_task(
        cfg,
        task_id="aggregate_changed",
        component="spark-jobs",
        arguments=["aggregate"],
        fail_fast_exit_codes=(2,),
    )
    aggregate_day >> aggregate_changed
