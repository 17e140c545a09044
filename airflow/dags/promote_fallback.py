"""promote_fallback: promote pandas fallback runs into the main facts, triggered by hand.

Promotion is an admin's act, never scheduled: trigger this DAG with the parameter ``run_ids``,
a list of fallback run ids (``cinepulse-fallback runs`` lists them; ``streaming_guard``'s
``record_for_promotion`` logs each one it made) or ``"all"`` for every run awaiting promotion,
oldest first. ``dry_run`` (default false) only counts the rows each run would insert. ``plan``
checks the parameters and logs what the pod will run; ``promote`` runs
``cinepulse-fallback promote RUN_ID... --by airflow/promote_fallback/<run>`` (or
``promote --all-pending --apply``) in a pod of the pandas-fallback image. Promotion is
idempotent (Spark's facts win; a promoted run inserts nothing again; ``all`` with nothing
pending succeeds and says so), so retries are safe. Exit codes 2 (bad arguments) and 3 (an
unknown run, or one that cannot be promoted) fail at once.

    airflow dags trigger promote_fallback --conf '{"run_ids": "all", "dry_run": true}'
    airflow dags trigger promote_fallback --conf '{"run_ids": ["fallback-20261207T0435Z-1a2b3c4d"]}'
"""

from __future__ import annotations

import re
from typing import Any

from airflow.sdk import Param, task

from cinepulse_airflow import alerts, config, pods

cfg = config.load()
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,199}$")


def promote_arguments(run_ids: Any, dry_run: bool, by: str) -> list[str]:
    """The ``cinepulse-fallback`` arguments for the trigger parameters; raises ValueError on a
    parameter the command must not get (an empty list, a run id that is not one)."""
    if run_ids == "all":
        return ["promote", "--all-pending", *(() if dry_run else ("--apply",)), "--by", by]
    if not isinstance(run_ids, list) or not run_ids:
        raise ValueError(f'run_ids must be "all" or a non-empty list of run ids, not {run_ids!r}')
    bad = [r for r in run_ids if not isinstance(r, str) or not RUN_ID.match(r)]
    if bad:
        raise ValueError(f"not fallback run ids: {bad!r}")
    unique = list(dict.fromkeys(run_ids))
    return ["promote", *unique, *(("--dry-run",) if dry_run else ()), "--by", by]


with alerts.cinepulse_dag(
    cfg,
    "promote_fallback",
    __doc__,
    tags=["fallback", "promotion"],
    schedule=None,
    params={
        "run_ids": Param(
            "all",
            description='fallback run ids to promote, or "all" (every run awaiting promotion)',
            anyOf=[
                {"type": "string", "enum": ["all"]},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ],
        ),
        "dry_run": Param(False, type="boolean", description="only count what would be promoted"),
    },
) as dag:

    @task
    def plan(**context: Any) -> list[str]:
        from airflow.sdk.exceptions import AirflowFailException

        params = context["params"]
        by = f"airflow/promote_fallback/{context['run_id']}"
        try:
            arguments = promote_arguments(params["run_ids"], bool(params["dry_run"]), by)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None  # no retry fixes a parameter
        print(f"promote_fallback: cinepulse-fallback {' '.join(arguments)}")
        return arguments

    promote = pods.pod_task(
        cfg,
        task_id="promote",
        component="pandas-fallback",
        arguments=plan(),
        fail_fast_exit_codes=(2, 3),  # bad arguments; unknown or unpromotable run
    )
