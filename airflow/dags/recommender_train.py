"""recommender_train: nightly LightFM training, evaluation and publish. The command
(``cinepulse-recommender train``) publishes only a model that beats the current one and
exits 0 either way."""

from __future__ import annotations

from cinepulse_airflow import alerts, config, pods

cfg = config.load()

with alerts.cinepulse_dag(
    cfg,
    "recommender_train",
    __doc__,
    tags=["recommender"],
) as dag:
    pods.pod_task(
        cfg,
        task_id="train",
        component="recommender",
        arguments=["train"],
        fail_fast_exit_codes=(2,),
    )
