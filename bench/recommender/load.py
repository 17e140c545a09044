"""The serving half of the recommender benchmark: the fresh user's ratings landed after
training, then ``python -m cinepulse_recommender serve`` started once per configuration
(:data:`~bench.recommender.parameters.CONFIGS`) and every path measured with ``hey``, next to
the time the server itself says it spent (its own latency histogram)."""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.loadgen import Trial, clean_env, free_port, hey, hey_binary, serve
from bench.recommender.parameters import (
    CONCURRENCY,
    CONFIGS,
    FRESH_USER,
    ROUNDS,
    STEADY_RATE,
    TRIAL_S,
    WARMUP_S,
)
from cinepulse_common.postgres import connect
from cinepulse_common.settings import PostgresSettings
from cinepulse_common.warehouse import load_events
from cinepulse_devstack import Stack
from cinepulse_devstack.movielens import rating_event
from cinepulse_devstack.procs import tail


def _ready(url: str, proc_alive: Any, log: Any) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not proc_alive():
            raise RuntimeError(f"the recommender exited at start-up:\n{tail(log)}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the recommender was not ready within 120s:\n{tail(log)}")


def _in_app(url: str) -> tuple[float, float]:
    """Seconds and requests so far in the server's own latency histogram (every route but
    /metrics): the time a request spends inside the app, queueing outside it excluded."""
    total = count = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        if family.name != "cinepulse_recommender_http_request_duration_seconds":
            continue
        for sample in family.samples:
            if sample.labels.get("route") == "/metrics":
                continue
            if sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
    return total, count


def land_fresh(dsn: str, n: int = 5) -> None:
    """``FRESH_USER`` rates the ``n`` most rated movies they had not rated, now, through the
    shared load step (as the Spark stream lands events)."""
    user = f"ml-{FRESH_USER}"
    with connect(PostgresSettings(dsn=dsn)) as conn, conn.transaction():
        movies = [
            int(m)
            for (m,) in conn.execute(
                "SELECT movie_id FROM fact_rating GROUP BY movie_id HAVING NOT bool_or(user_id = "
                "%s) ORDER BY count(*) DESC, movie_id LIMIT %s",
                (user, n),
            )
        ]
        now = int(time.time())
        load_events(
            conn,
            [rating_event(FRESH_USER, m, 5.0, now, 0) for m in movies],
            source_flag="bench",
        )


def serve_and_load(stack: Stack, dsn: str) -> tuple[dict[str, list[Trial]], dict[str, list[float]]]:
    """Every path in ``CONFIGS[""]`` (history cached), then the ceiling and the fresh user in
    ``CONFIGS["u"]`` (history read from the facts on every request); keys prefixed ``u``."""
    land_fresh(dsn)
    user = "ml-414"  # the most active MovieLens user
    paths = {
        "a": "/healthz",
        "b": f"/api/recommendations?user_id={user}&k=10",
        "c": f"/api/recommendations?user_id={user}&k=10&exclude_seen=false",
        "d": "/api/recommendations?user_id=nobody&k=10&genre=Drama",
        "e": "/api/movies/603/similar?k=10",
        "f": f"/api/recommendations?user_id=ml-{FRESH_USER}&k=10",
    }
    binary = hey_binary(stack)
    trials: dict[str, list[Trial]] = {}
    in_app: dict[str, list[float]] = {}
    for config, extra in CONFIGS.items():
        chosen = paths if not config else {k: paths[k] for k in ("a", "f")}
        steady = ("a", "b", "f") if not config else ("a", "f")
        _serve_config(binary, dsn, config, extra, chosen, steady, trials, in_app)
    return trials, in_app


def _serve_config(
    binary: str,
    dsn: str,
    config: str,
    extra: dict[str, str],
    paths: dict[str, str],
    steady: tuple[str, ...],
    trials: dict[str, list[Trial]],
    in_app: dict[str, list[float]],
) -> None:
    port = free_port()
    # an internal client, as the explorer is: its key checked on every request
    key = secrets.token_urlsafe(24)
    headers = {"X-API-Key": key}
    env = clean_env(
        {
            "CINEPULSE_POSTGRES__DSN": dsn,
            "CINEPULSE_AUTH__KEYS": json.dumps({"bench": key}),
            "CINEPULSE_AUTH__ROLES": json.dumps({"bench": "internal"}),
            # the load is the measurement: no 429 from the per-client rate limit
            "CINEPULSE_RATE_LIMIT__CLIENTS": json.dumps({"bench": "unlimited"}),
            "CINEPULSE_LOG_LEVEL": "WARNING",
        }
        | extra
    )
    cmd = [sys.executable, "-m", "cinepulse_recommender", "serve"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    for k in [*paths, *(f"s{k}" for k in steady)]:
        trials[config + k], in_app[config + k] = [], []
    with (
        tempfile.TemporaryDirectory(prefix="bench-recommender-") as tmp,
        serve("recommender", cmd, port, env, Path(tmp)) as server,
    ):
        _ready(server.url, lambda: server.proc.poll() is None, server.log)
        for path in paths.values():  # every path answers 200 before the clock starts
            r = httpx.get(server.url + path, headers=headers, timeout=10)
            if r.status_code != 200:
                raise RuntimeError(f"{path} answered {r.status_code}: {r.text[:300]}")
        fresh = httpx.get(server.url + paths["f"], headers=headers, timeout=10).json()
        if fresh["strategy"] != "model":
            raise RuntimeError(f"the fresh user was answered {fresh['strategy']!r}")

        def once(
            path: str, seconds: int, qps: float | None = None, warm: Trial | None = None
        ) -> Trial:
            return hey(
                binary,
                server,
                path,
                None,
                headers,
                seconds=seconds,
                concurrency=CONCURRENCY,
                per_request=1,
                broker_pid=None,
                qps=qps,
                ok_status=200,
                sized_by=warm,
            )

        def measured(
            key: str, path: str, seconds: int, qps: float | None = None, warm: Trial | None = None
        ) -> None:
            s0, n0 = _in_app(server.url)
            trials[config + key].append(once(path, seconds, qps, warm))
            s1, n1 = _in_app(server.url)
            in_app[config + key].append((s1 - s0) / max(n1 - n0, 1) * 1000)

        for _ in range(ROUNDS):  # interleaved: drift hits every path alike
            for key, path in paths.items():
                warm = once(path, WARMUP_S)
                # long enough for every percentile at the warm-up's rate
                measured(key, path, TRIAL_S, warm=warm)
        # the target's load, on the ceiling and on the model's paths
        for key in steady:
            measured(f"s{key}", paths[key], TRIAL_S * 2, qps=STEADY_RATE / CONCURRENCY)
        if "f" in paths:  # the fresh path was taken, reading the facts as configured
            text = httpx.get(f"{server.url}/metrics", timeout=10).text
            if 'path="fresh"' not in text:
                raise RuntimeError("no answer took the fresh path")
