"""The recommender on MovieLens-small through the warehouse: quality against its baselines,
training time, and serving next to its own framework ceiling, in one run.

* Data: the 3,000 TMDB movies and the 57,578 MovieLens ratings of those movies (610 users),
  loaded through the shared load step into a fresh, migrated database.
* Quality: one real training run (``run_training`` with the default settings, as
  ``cinepulse-recommender train`` does): LightFM, implicit's ALS and popularity on the same
  per-user time split (each user's latest 20% held out), the same candidates and the same
  exclusions; LightFM's epochs and ALS's factors/regularisation/alpha tuned on a validation
  split carved from the training part. NDCG@10, P@10, R@10; training time with tuning and
  of the final fit alone.
* Serving: ``python -m cinepulse_recommender serve`` (uvicorn, uvloop, httptools; one
  process) with that model; ``hey`` at a fixed concurrency (:data:`CONCURRENCY`),
  interleaved rounds of (a) ``GET /healthz`` of the same process (the framework ceiling),
  (b) a known user's recommendations (the precomputed top-N), (c) the same user with
  ``exclude_seen=false`` (scored on the fly over every candidate), (d) a cold-start user
  in a genre, (e) similar movies; then (b) at a steady :data:`STEADY_RATE` req/s, the
  target's load. Every request carries an internal client's API key (``X-API-Key``,
  checked as in production).
"""

from __future__ import annotations

import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.loadgen import (
    Trial,
    clean_env,
    free_port,
    hey,
    hey_binary,
    latency_figures,
    median,
    serve,
)
from bench.report import Figure, Table, Target
from cinepulse_common.postgres import connect
from cinepulse_common.settings import PostgresSettings
from cinepulse_devstack import Stack
from cinepulse_devstack.movielens import load_movielens, read_movielens
from cinepulse_devstack.procs import tail
from cinepulse_migrations.cli import upgrade
from cinepulse_recommender.settings import RecommenderSettings
from cinepulse_recommender.training import Outcome, run_training, stderr_progress

ROUNDS = 3
WARMUP_S = 2
TRIAL_S = 8
CONCURRENCY = 16
STEADY_RATE = 500
#: the issue's targets
TARGET_VS_ALS = 1.3
TARGET_VS_POPULARITY = 1.5
TARGET_P99_MS = 30.0
TARGET_RPS = 500


def run(stack: Stack) -> list[Table]:
    db = f"bench_rec_{secrets.token_hex(4)}"
    dsn = stack.postgres.create_database(db, replace=True)
    try:
        upgrade(dsn, "head")
        pg = PostgresSettings(dsn=dsn)
        t0 = time.monotonic()
        with connect(pg) as conn:
            load_movielens(conn, read_movielens())
        loaded_s = time.monotonic() - t0
        outcome = run_training(RecommenderSettings(postgres=pg), progress=stderr_progress)
        trials, in_app = _serve_and_load(stack, dsn)
        return _table(outcome, loaded_s, trials, in_app)
    finally:
        stack.postgres.drop_database(db)


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


def _serve_and_load(
    stack: Stack, dsn: str
) -> tuple[dict[str, list[Trial]], dict[str, list[float]]]:
    port = free_port()
    # an internal client, as the explorer is: its key checked on every request
    key = secrets.token_urlsafe(24)
    headers = {"X-API-Key": key}
    env = clean_env(
        {
            "CINEPULSE_POSTGRES__DSN": dsn,
            "CINEPULSE_AUTH__KEYS": json.dumps({"bench": key}),
            "CINEPULSE_AUTH__ROLES": json.dumps({"bench": "internal"}),
            "CINEPULSE_LOG_LEVEL": "WARNING",
        }
    )
    cmd = [sys.executable, "-m", "cinepulse_recommender", "serve"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    user = "ml-414"  # the most active MovieLens user
    paths = {
        "a": "/healthz",
        "b": f"/api/recommendations?user_id={user}&k=10",
        "c": f"/api/recommendations?user_id={user}&k=10&exclude_seen=false",
        "d": "/api/recommendations?user_id=nobody&k=10&genre=Drama",
        "e": "/api/movies/603/similar?k=10",
    }
    binary = hey_binary(stack)
    trials: dict[str, list[Trial]] = {k: [] for k in [*paths, "sa", "sb"]}
    in_app: dict[str, list[float]] = {k: [] for k in trials}
    with (
        tempfile.TemporaryDirectory(prefix="bench-recommender-") as tmp,
        serve("recommender", cmd, port, env, Path(tmp)) as server,
    ):
        _ready(server.url, lambda: server.proc.poll() is None, server.log)
        for path in paths.values():  # every path answers 200 before the clock starts
            r = httpx.get(server.url + path, headers=headers, timeout=10)
            if r.status_code != 200:
                raise RuntimeError(f"{path} answered {r.status_code}: {r.text[:300]}")

        def once(path: str, seconds: int, qps: float | None = None) -> Trial:
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
            )

        def measured(key: str, path: str, seconds: int, qps: float | None = None) -> None:
            s0, n0 = _in_app(server.url)
            trials[key].append(once(path, seconds, qps))
            s1, n1 = _in_app(server.url)
            in_app[key].append((s1 - s0) / max(n1 - n0, 1) * 1000)

        for _ in range(ROUNDS):  # interleaved: drift hits every path alike
            for key, path in paths.items():
                once(path, WARMUP_S)
                measured(key, path, TRIAL_S)
        # the target's load, on the ceiling and on the precomputed path
        for key in ("a", "b"):
            measured(f"s{key}", paths[key], TRIAL_S * 2, qps=STEADY_RATE / CONCURRENCY)
    return trials, in_app


def _table(
    outcome: Outcome,
    loaded_s: float,
    trials: dict[str, list[Trial]],
    in_app: dict[str, list[float]],
) -> list[Table]:
    m = outcome.metrics
    k = m["k"]
    table = Table(
        f"Recommender on MovieLens-small through the warehouse ({m['split']['users_evaluated']} "
        f"users evaluated, {m['split']['relevant_pairs']:,} held-out pairs, "
        f"{m['split']['candidates']:,} candidate movies)",
        "model",
    )
    names = {
        "model": f"LightFM ({_lightfm_params(outcome.params['lightfm'])})",
        "als": f"implicit ALS ({_als_params(m['als']['params'])})",
        "popularity": "popularity (users per movie in the training part)",
    }
    shorts = {"model": "LightFM", "als": "ALS", "popularity": "popularity"}
    quality = {}
    for name in ("model", "als", "popularity"):
        r = m[name]
        quality[name] = table.add(
            names[name],
            {
                f"NDCG@{k}": Figure(r[f"ndcg@{k}"], better="higher", fmt=".4f"),
                f"P@{k}": Figure(r[f"precision@{k}"], better="higher", fmt=".4f"),
                f"R@{k}": Figure(r[f"recall@{k}"], better="higher", fmt=".4f"),
                "train (with tuning)": Figure(r["train_seconds"], "s", fmt=".1f"),
                "fit": Figure(r.get("fit_seconds", r["train_seconds"]), "s", fmt=".1f"),
            },
            baseline=name != "model",
            short=shorts[name],
        )
    lightfm = quality["model"]
    lightfm.compare(f"NDCG@{k}", quality["als"], target=Target(">=", TARGET_VS_ALS), headline=True)
    lightfm.compare(f"NDCG@{k}", quality["popularity"], target=Target(">=", TARGET_VS_POPULARITY))
    table.notes.append(
        f"the run: load {loaded_s:.1f}s, training job {outcome.seconds:.1f}s end to end "
        f"(read, split, both baselines, tuning, artefact, registry); model {outcome.version} "
        f"{'published' if outcome.published else 'rejected'} ({outcome.reason})"
    )
    serving = Table(
        f"Recommender serving (hey, c={CONCURRENCY}, median of {ROUNDS} {TRIAL_S}s trials "
        "after a warm-up; one uvicorn process)",
        "path",
    )
    labels = {
        "a": "(a) GET /healthz: framework ceiling",
        "b": "(b) known user, precomputed top-N",
        "c": "(c) known user, exclude_seen=false (scored)",
        "d": "(d) cold-start user, genre=Drama (popular_in_genre)",
        "e": "(e) similar movies (cosine, scored)",
        "sa": f"(a) at a steady {STEADY_RATE} req/s",
        "sb": f"(b) at a steady {STEADY_RATE} req/s",
    }
    shorts = {
        "a": "(a) /healthz",
        "b": "(b) known user, top-N",
        "c": "(c) known user, scored",
        "d": "(d) cold-start, genre",
        "e": "(e) similar movies",
        "sa": f"(a) /healthz, steady {STEADY_RATE}/s",
        "sb": f"(b) known user, steady {STEADY_RATE}/s",
    }
    rows = {}
    for key, ts in trials.items():
        steady = key == "sb"  # the target's load
        rows[key] = serving.add(
            labels[key],
            {
                "req/s": Figure(
                    median(ts, "events_s"),
                    "req/s",
                    better="higher",
                    # hey paces a steady load a little under the rate it is asked for
                    target=Target(
                        ">=", TARGET_RPS * 0.98, f">= {TARGET_RPS} req/s (2% pacing slack)"
                    )
                    if steady
                    else None,
                ),
                **latency_figures(ts, TARGET_P99_MS if steady else None),
                "in-app (mean)": Figure(statistics.median(in_app[key]), "ms", fmt=".2f"),
                "server CPU per request": Figure(
                    statistics.median(t.server_cores / t.events_s * 1000 for t in ts),
                    "ms",
                    fmt=".2f",
                ),
                "server cores": Figure(median(ts, "server_cores"), "cores", fmt=".2f"),
                "hey cores": Figure(median(ts, "client_cores"), "cores", fmt=".2f"),
            },
            baseline=key in ("a", "sa"),
            short=shorts[key],
        )
    for key in ("b", "c", "d", "e"):
        rows[key].compare("req/s", rows["a"])
    # at the target's load: the same process's trivial /healthz at the same load
    rows["sb"].compare("p99", rows["sa"])
    serving.notes.append(
        "where the time goes: 'in-app' is the server's own histogram (routing, the model, "
        "JSON), 'server CPU per request' its CPU per answer; the rest of p50/p99 is waiting for a "
        "core (hey, the database and other processes share the machine's 2 cores)"
    )
    other = max(t.other_cores for ts in trials.values() for t in ts)
    serving.notes.append(
        f"the machine has 2 cores shared with everything else: hey itself used "
        f"{median(trials['b'], 'client_cores'):.2f} cores in (b), and other processes up to "
        f"{other:.2f} cores during a trial"
    )
    failures = {
        f"({key}) {what}": n
        for key, ts in trials.items()
        for t in ts
        for what, n in t.failures.items()
    }
    serving.notes.append(
        "FAILED answers: " + "; ".join(f"{w}: {n}" for w, n in failures.items())
        if failures
        else "every answer was 200"
    )
    return [table, serving]


def _lightfm_params(p: dict[str, Any]) -> str:
    return (
        f"{p['loss']}, {p['no_components']} components, {p['epochs']} of {p['max_epochs']} "
        f"epochs, features: identity + {' + '.join(p['item_features'])}"
    )


def _als_params(p: dict[str, Any]) -> str:
    return ", ".join(f"{k}={p[k]}" for k in ("factors", "regularization", "alpha", "iterations"))
