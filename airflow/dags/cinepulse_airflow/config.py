"""Everything the DAGs need to know about the cluster, in one place.

The defaults below are the documented baseline (README "Airflow"). A deployment overrides any
of them with one JSON Airflow Variable, ``cinepulse_config``, deep-merged over
:data:`DEFAULTS`. Set it as the environment variable ``AIRFLOW_VAR_CINEPULSE_CONFIG`` (the
Helm values do, from a ConfigMap): Airflow reads environment Variables before the metadata
database, so parsing a DAG file costs no database query. A key that is not in the defaults
is refused (a typo must not silently fall back to a default). The Prometheus and Alertmanager
URLs also come from environment variables of their own (:data:`ENDPOINT_ENV`), which the
Variable overrides when it names them.

DAG files never name an image, namespace, Secret, service account or resource amount: they
ask :func:`load` and build pods with :mod:`cinepulse_airflow.pods`.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from typing import Any

VARIABLE = "cinepulse_config"
ENV_VARIABLE = "AIRFLOW_VAR_CINEPULSE_CONFIG"

# The monitoring endpoints, each an environment variable of its own (the Helm values set them
# from a ConfigMap of their own, so a values file for another cluster overrides just them):
# over the defaults, under the ``cinepulse_config`` Variable.
ENDPOINT_ENV = {
    "prometheus_url": "CINEPULSE_AIRFLOW_PROMETHEUS_URL",
    "alertmanager_url": "CINEPULSE_AIRFLOW_ALERTMANAGER_URL",
}

# Components: one image each (issue 9 builds them), the CINEPULSE_* Secrets its command reads,
# its service account and its resources.
DEFAULTS: dict[str, Any] = {
    # Kubernetes namespace the pods run in (the Airflow release's RBAC must allow it)
    "namespace": "cinepulse",
    # the Helm release of charts/cinepulse: its NetworkPolicies admit the pods labelled as
    # this release's batch jobs, and its Secrets, ConfigMap and ServiceAccounts are named
    # after it (release "cinepulse": cinepulse-postgresql, cinepulse-config, cinepulse-jobs)
    "release": "cinepulse",
    # prefixed to every image name ("" = as written); e.g. "registry.example.com/"
    "image_registry": "",
    "image_pull_policy": "IfNotPresent",
    "image_pull_secrets": [],
    # ConfigMap with the non-secret CINEPULSE_* variables (Kafka bootstrap, TMDB base URL, ...)
    "config_map": "cinepulse-config",
    # Secrets, by logical name: an env variable from a key, or a directory of files (volume).
    # PostgreSQL: each component logs in as its service's own login (migration 0012's roles:
    # cinepulse_<service>_login, a member of the group cinepulse_<service> only), never as the
    # database's owner. The chart's bundled PostgreSQL generates their DSNs in one Secret
    # (release "cinepulse": cinepulse-postgresql-logins, keys <service>-dsn); with an external
    # PostgreSQL, point each at the operator's Secret and key (one Secret for all works, but
    # every task then holds that DSN's rights).
    "secrets": {
        "postgres-fetcher": {
            "secret": "cinepulse-postgresql-logins",
            "key": "fetcher-dsn",
            "env": "CINEPULSE_POSTGRES__DSN",
        },
        "postgres-fallback": {
            "secret": "cinepulse-postgresql-logins",
            "key": "fallback-dsn",
            "env": "CINEPULSE_POSTGRES__DSN",
        },
        "postgres-spark": {
            "secret": "cinepulse-postgresql-logins",
            "key": "spark-dsn",
            "env": "CINEPULSE_POSTGRES__DSN",
        },
        "postgres-recommender": {
            "secret": "cinepulse-postgresql-logins",
            "key": "recommender-dsn",
            "env": "CINEPULSE_POSTGRES__DSN",
        },
        "postgres-quality": {
            "secret": "cinepulse-postgresql-logins",
            "key": "quality-dsn",
            "env": "CINEPULSE_POSTGRES__DSN",
        },
        # each job's MongoDB URL: the one URL by default; point them at users of their own on
        # a MongoDB that enforces roles (the fetcher writes its TMDB responses, the fallback
        # and the quality check only read; docs/operations/security.md)
        "mongo-fetcher": {
            "secret": "cinepulse-mongodb",
            "key": "url",
            "env": "CINEPULSE_MONGO__URL",
        },
        "mongo-fallback": {
            "secret": "cinepulse-mongodb",
            "key": "url",
            "env": "CINEPULSE_MONGO__URL",
        },
        "mongo-quality": {
            "secret": "cinepulse-mongodb",
            "key": "url",
            "env": "CINEPULSE_MONGO__URL",
        },
        "tmdb": {
            "secret": "cinepulse-tmdb",
            "mount": "/var/run/secrets/cinepulse/tmdb",
            # the file in the mount the env variable points at
            "env_files": {"CINEPULSE_TMDB__TOKEN_FILE": "token"},
        },
    },
    # the pods' user (the images' non-root user) and their writable scratch space
    "run_as_user": 10001,
    "scratch_size": "1Gi",
    "components": {
        "tmdb-fetcher": {
            "image": "cinepulse/tmdb-fetcher:0.1.0",
            "command": "cinepulse-tmdb-fetcher",
            "secrets": ["postgres-fetcher", "mongo-fetcher", "tmdb"],
            "service_account": "cinepulse-jobs",
            "resources": {
                "requests": {"cpu": "250m", "memory": "256Mi"},
                "limits": {"memory": "512Mi"},
            },
        },
        "pandas-fallback": {
            "image": "cinepulse/pandas-fallback:0.1.0",
            "command": "cinepulse-fallback",
            "secrets": ["postgres-fallback", "mongo-fallback"],
            "service_account": "cinepulse-jobs",
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"memory": "2Gi"},
            },
        },
        "spark-jobs": {
            "image": "cinepulse/spark-jobs:0.1.0",
            "command": "cinepulse-spark-jobs",
            "secrets": ["postgres-spark"],
            "service_account": "cinepulse-spark",
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "3Gi"}},
        },
        "recommender": {
            "image": "cinepulse/recommender:0.1.0",
            "command": "cinepulse-recommender",
            "secrets": ["postgres-recommender"],
            "service_account": "cinepulse-jobs",
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
        },
        "quality": {
            "image": "cinepulse/quality:0.1.0",
            "command": "cinepulse-quality",
            "secrets": ["postgres-quality", "mongo-quality"],
            "service_account": "cinepulse-jobs",
            "resources": {
                "requests": {"cpu": "250m", "memory": "512Mi"},
                "limits": {"memory": "1Gi"},
            },
        },
    },
    # pod lifecycle
    "startup_timeout_s": 600,
    # task retries: exponential backoff from retry_delay_s, capped at max_retry_delay_s
    "retries": 3,
    "retry_delay_s": 60,
    "max_retry_delay_s": 1800,
    # failure alerts: always an ERROR log line; also an alert POSTed to Alertmanager's v2 API
    # when its base URL is set (e.g. http://kube-prometheus-stack-alertmanager.monitoring.svc:9093;
    # the hook appends /api/v2/alerts). The alert resolves alert_ttl_s after the failure.
    "alertmanager_url": "",
    "alert_timeout_s": 10,
    "alert_severity": "warning",
    "alert_ttl_s": 3600,
    # where streaming_guard reads health from (an Airflow Connection, not a pod's Secret: the
    # check runs in Airflow). It only reads the facts and fallback.runs: a read-only login is
    # enough (cinepulse_quality_login's grants cover it), never the owner's
    "postgres_conn_id": "cinepulse_postgres",
    # Prometheus' base URL (the Spark heartbeat query); "" = judge by the newest fact only
    "prometheus_url": "",
    "schedules": {
        "tmdb_ingest": "5 * * * *",
        "streaming_guard": "*/5 * * * *",
        "recommender_train": "30 2 * * *",
        "daily_aggregates": "15 1 * * *",
        "data_quality": "20 * * * *",
    },
    # tmdb_ingest: the hour (UTC) whose run is the daily full load instead of the incremental
    "tmdb_full_load_hour": 3,
    "streaming": {
        # the Spark query's heartbeat (cinepulse_spark_last_progress_timestamp_seconds) older
        # than this = unhealthy; it ticks when idle too, so it is the preferred signal
        "heartbeat_max_age_s": 300,
        # without a heartbeat (no Prometheus): the newest Spark fact older than this = unhealthy
        "fact_max_age_s": 900,
        # Spark's facts cover arrivals up to its newest load minus this margin (its lag);
        # overlap is harmless (promotion skips events that already have a fact), gaps are not
        "coverage_overlap_s": 900,
        # the longest window one fallback run takes (bounds a run after a long outage)
        "max_window_s": 86400,
    },
    # data_quality reconciles the newest window of quality_window_s (clock-aligned) that
    # ended at least quality_settle_s before the run (Spark and the archiver catch up first)
    "quality_settle_s": 900,
    "quality_window_s": 3600,
}


class ConfigError(ValueError):
    pass


def _merge(base: dict[str, Any], override: dict[str, Any], path: str = "") -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}{key}"
        if key not in base and path not in ("secrets.", "components."):
            raise ConfigError(f"{VARIABLE}: unknown key {where!r}")
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merge(base[key], value, f"{where}.")
        else:
            merged[key] = value
    return merged


def _read_variable() -> dict[str, Any]:
    """The ``cinepulse_config`` Variable: from the environment when set (no database query
    at parse time), else from Airflow's Variables; {} when there is none."""
    raw = os.environ.get(ENV_VARIABLE)
    if raw is None:
        from airflow.sdk import Variable

        raw = Variable.get(VARIABLE, default=None)
    if not raw:
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{VARIABLE} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{VARIABLE} must be a JSON object")
    return value


@dataclass(frozen=True)
class Config:
    raw: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def component(self, name: str) -> dict[str, Any]:
        try:
            return dict(self.raw["components"][name])
        except KeyError:
            raise ConfigError(f"{VARIABLE}: no component {name!r}") from None

    def image(self, component: str) -> str:
        return f"{self.raw['image_registry']}{self.component(component)['image']}"

    def schedule(self, dag_id: str) -> str:
        return str(self.raw["schedules"][dag_id])


def _check_secrets(merged: dict[str, Any]) -> None:
    """Every Secret a component names is defined, and every defined one is used: an override
    of a logical name no component reads (e.g. the owner's ``postgres``, which the tasks no
    longer use) would otherwise be ignored without a word."""
    used = {name for comp in merged["components"].values() for name in comp.get("secrets", [])}
    undefined = sorted(used - set(merged["secrets"]))
    if undefined:
        raise ConfigError(f"{VARIABLE}: components read undefined secrets {undefined}")
    unused = sorted(set(merged["secrets"]) - used)
    if unused:
        raise ConfigError(
            f"{VARIABLE}: no component reads secrets {unused} (the tasks' PostgreSQL DSNs "
            "are secrets.postgres-<service>, one login each; their MongoDB URLs "
            "secrets.mongo-<service>, which replaced secrets.mongo)"
        )


def load(override: dict[str, Any] | None = None) -> Config:
    """The configuration: :data:`DEFAULTS`, the endpoint variables of :data:`ENDPOINT_ENV`
    (when set) over them, the ``cinepulse_config`` Variable over those, then ``override``
    (tests)."""
    endpoints = {key: os.environ[env] for key, env in ENDPOINT_ENV.items() if env in os.environ}
    merged = _merge(_merge(DEFAULTS, endpoints), _read_variable())
    if override:
        merged = _merge(merged, override)
    _check_secrets(merged)
    return Config(merged)
