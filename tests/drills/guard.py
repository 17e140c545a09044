"""streaming_guard's decision, taken the way its ``check_streaming`` task takes it.

The DAG (``airflow/dags/streaming_guard.py``) lives in its own uv project, but the decision
is plain Python: ``cinepulse_airflow.streaming`` (``coverage``, ``heartbeat``, ``decide``) and
``cinepulse_airflow.config`` import nothing from Airflow as long as the ``cinepulse_config``
Variable comes from the environment (``AIRFLOW_VAR_CINEPULSE_CONFIG``, as the Helm values set
it). So the drill loads those two modules from ``airflow/dags`` by path and runs the task's
body: the same three calls on the same signals (a DB-API connection to the warehouse for the
coverage, the Prometheus query API for the heartbeat). What it does not run is Airflow itself:
``Variable.get("use_pandas_fallback")`` is replaced by its default ("false") and
``PostgresHook`` by a psycopg connection.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import psycopg

from cinepulse_common.paths import repo_root
from cinepulse_devstack import Stack

PACKAGE = "cinepulse_airflow"


def _package() -> tuple[ModuleType, ModuleType]:
    """``cinepulse_airflow.streaming`` and ``.config`` from ``airflow/dags``."""
    if PACKAGE not in sys.modules:
        folder = repo_root() / "airflow" / "dags" / PACKAGE
        spec = importlib.util.spec_from_file_location(
            PACKAGE, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        spec.loader.exec_module(module)
    return (
        importlib.import_module(f"{PACKAGE}.streaming"),
        importlib.import_module(f"{PACKAGE}.config"),
    )


def decision(stack: Stack, variable: dict[str, Any]) -> Any:
    """``check_streaming``'s decision against the private stack, with the ``cinepulse_config``
    Variable ``variable`` (a ``streaming.Decision``)."""
    streaming, config = _package()
    previous = os.environ.get(config.ENV_VARIABLE)
    os.environ[config.ENV_VARIABLE] = json.dumps(variable)
    try:
        cfg = config.load()
    finally:
        if previous is None:
            del os.environ[config.ENV_VARIABLE]
        else:
            os.environ[config.ENV_VARIABLE] = previous
    forced = streaming.is_true("false")  # Variable.get("use_pandas_fallback", default="false")
    with psycopg.connect(stack.postgres.admin_dsn()) as conn:
        newest_fact, last_fallback_end = streaming.coverage(conn)
    signals = streaming.Signals(
        now=datetime.now(UTC),
        forced=forced,
        heartbeat_at=streaming.heartbeat(cfg["prometheus_url"]),
        newest_spark_fact_at=newest_fact,
        last_fallback_end=last_fallback_end,
    )
    return streaming.decide(signals, cfg["streaming"])
