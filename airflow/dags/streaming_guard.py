"""streaming_guard: the pandas fallback over what Spark's streaming path missed. Every few
minutes: is Spark healthy? If not (or if the Variable ``use_pandas_fallback`` forces it), run
the pandas fallback over the arrival window nobody covered yet, and record the run for an
admin to promote (never automatic: ``cinepulse-fallback promote RUN_ID``, or the DAG
``promote_fallback``). One run per outage: while the outage lasts, each window extends the
outage's run (``--extend``) rather than starting a new one."""

from __future__ import annotations

from contextlib import closing
from typing import Any

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Asset, Variable, task

from cinepulse_airflow import alerts, config, pods, streaming

cfg = config.load()
FALLBACK_RUNS = Asset("cinepulse://postgres/fallback/runs")
REQUESTED_BY = "airflow/streaming_guard/{{ run_id }}"
WINDOW = "{{ ti.xcom_pull(task_ids='check_streaming')['window_%s'] }}"
# '' = a new run
EXTEND = "{{ ti.xcom_pull(task_ids='check_streaming')['extend_run_id'] or '' }}"

# one run at a time: each run starts where the last fallback run ended
with alerts.cinepulse_dag(
    cfg,
    "streaming_guard",
    __doc__,
    tags=["streaming", "fallback"],
) as dag:

    @task(retries=1)
    def check_streaming() -> dict[str, Any]:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        forced = streaming.is_true(Variable.get("use_pandas_fallback", default="false"))
        outage = Variable.get(streaming.OUTAGE_VARIABLE, default=None)
        with closing(PostgresHook(postgres_conn_id=cfg["postgres_conn_id"]).get_conn()) as conn:
            newest_fact, last_fallback_end = streaming.coverage(conn)
            outage_run = streaming.outage_run(conn, outage)
        signals = streaming.Signals(
            now=pendulum.now("UTC"),
            forced=forced,
            heartbeat_at=streaming.heartbeat(cfg["prometheus_url"]),
            newest_spark_fact_at=newest_fact,
            last_fallback_end=last_fallback_end,
            outage_run=outage_run,
        )
        decision = streaming.decide(signals, cfg["streaming"])
        if decision.healthy and not decision.forced and outage:
            Variable.delete(streaming.OUTAGE_VARIABLE)  # the outage is over
            print(f"streaming_guard: the outage of fallback run {outage} is over")
        print(f"streaming_guard: {decision.reason}")
        return decision.as_dict()

    @task.branch
    def choose(decision: dict[str, Any]) -> str:
        return "run_fallback" if decision["run_fallback"] else "streaming_ok"

    run_fallback = pods.pod_task(
        cfg,
        task_id="run_fallback",
        component="pandas-fallback",
        arguments=[
            *("run", "--from", WINDOW % "start", "--to", WINDOW % "end"),
            *("--extend", EXTEND, "--by", REQUESTED_BY),
        ],
        fail_fast_exit_codes=(2,),  # bad arguments or configuration
    )

    @task(outlets=[FALLBACK_RUNS])
    def record_for_promotion(**context: Any) -> dict[str, Any]:
        """Find the run the pod made (by its --by) or extended, announce it for promotion,
        and remember it as the outage's run."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        requested_by = f"airflow/streaming_guard/{context['run_id']}"
        extended = context["ti"].xcom_pull(task_ids="check_streaming")["extend_run_id"]
        with closing(PostgresHook(postgres_conn_id=cfg["postgres_conn_id"]).get_conn()) as conn:
            run = streaming.find_run(conn, requested_by, extended)
        if run is None or run["status"] not in ("succeeded", "promoted"):
            raise RuntimeError(f"no succeeded fallback run requested by {requested_by}: {run}")
        Variable.set(streaming.OUTAGE_VARIABLE, run["run_id"])
        context["outlet_events"][FALLBACK_RUNS].extra = {
            "run_id": run["run_id"],
            "extended": bool(extended),
        }
        print(
            f"fallback run {run['run_id']} ({'extended, ' if extended else ''}"
            f"{run['window_start']} .. {run['window_end']}, {run['events_read']} events)"
            f" awaits promotion: cinepulse-fallback promote {run['run_id']}"
            " (or trigger the DAG promote_fallback)"
        )
        return run

    decision = check_streaming()
    streaming_ok = EmptyOperator(task_id="streaming_ok")
    choose(decision) >> [run_fallback, streaming_ok]  # type: ignore[arg-type]  # an XComArg
    run_fallback >> record_for_promotion()
