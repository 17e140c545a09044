"""The recommender on MovieLens-small through the warehouse: quality against its baselines,
training time, and serving next to its own framework ceiling, in one run.

* Data: the 3,000 TMDB movies and the 57,578 MovieLens ratings of those movies (610 users),
  loaded through the shared load step into a fresh, migrated database.
* Quality: one real training run (``run_training`` with the default settings, as
  ``cinepulse-recommender train`` does): every candidate (popularity, implicit's ALS,
  LightFM, RP3beta, EASE^R, a blend) on the same per-user time split (each user's latest
  20% held out), the same candidates and the same exclusions; each tuned on a validation
  split carved from the training part (see docs/recommender.md). NDCG@10, P@10, R@10 on the test part and NDCG@10 on validation (what
  picks the served model); training time with tuning and of the final fit alone. The
  served model's ratio to ALS is the headline.
* Serving: ``python -m cinepulse_recommender serve`` (uvicorn, uvloop, httptools; one
  process) with that model; ``hey`` at a fixed concurrency (:data:`CONCURRENCY`),
  interleaved rounds of (a) ``GET /healthz`` of the same process (the framework ceiling),
  (b) a known user's recommendations (the precomputed top-N), (c) the same user with
  ``exclude_seen=false`` (scored on the fly over every candidate), (d) a cold-start user
  in a genre, (e) similar movies, (f) a user who rated movies after the model was trained
  (ratings landed through the shared load step just before serving): their history read
  from the facts at request time and scored (issue 23); then (b) and (f) at a steady
  :data:`STEADY_RATE` req/s, the target's load. A second server process reads the history
  on every request (``CINEPULSE_HISTORY__TTL_S=0``): its own (a) and (f). Request-time
  scoring's targets are against the same process's /healthz in the same run: req/s at
  least 0.2x saturated, p99 at most 3x at the steady load. Every request carries an
  internal client's API key (``X-API-Key``, checked as in production).
* Scale (:mod:`bench.recommender_scale`): each candidate's fit time and peak memory at
  2,500 and 20,000 items of a synthetic catalogue.

``python -m bench.recommender serving`` runs the serving part alone (the model trained
without tuning).
"""

from __future__ import annotations

import json
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench import recommender_scale
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
from cinepulse_common.warehouse import EVENT_COLUMNS, MOVIE_COLUMNS, load_events
from cinepulse_devstack import Stack
from cinepulse_devstack.movielens import load_movielens, rating_event, read_movielens
from cinepulse_devstack.procs import tail
from cinepulse_migrations.cli import upgrade
from cinepulse_recommender.interactions import Events
from cinepulse_recommender.settings import RecommenderSettings
from cinepulse_recommender.training import (
    Outcome,
    run_training,
    stderr_progress,
    train_and_evaluate,
)
from cinepulse_recommender.warehouse import Catalogue, WarehouseData

ROUNDS = 3
WARMUP_S = 2
TRIAL_S = 8
CONCURRENCY = 16
STEADY_RATE = 500
#: the issue's targets (issue 23): the served model never below the tuned ALS of the same
#: run, aiming at 1.05x
FLOOR_VS_ALS = 1.0
TARGET_VS_ALS = 1.05
TARGET_VS_POPULARITY = 1.5
TARGET_P99_MS = 30.0
TARGET_RPS = 500
#: request-time scoring against the same app's /healthz in the same run (issue 23)
FRESH_RPS_VS_TRIVIAL = 0.2
FRESH_P99_VS_TRIVIAL = 3.0


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
        tables = _table(outcome, loaded_s, trials, in_app)
    finally:
        stack.postgres.drop_database(db)
    return [*tables, recommender_scale.table(recommender_scale.run_all())]


def serving() -> None:
    """``python -m bench.recommender serving``: the serving table alone (the model trained
    without tuning, so in a minute rather than several), printed as markdown."""
    from cinepulse_recommender.settings import AlsSettings, EaseSettings, ModelSettings, Rp3Settings

    stack = Stack()
    db = f"bench_rec_{secrets.token_hex(4)}"
    dsn = stack.postgres.create_database(db, replace=True)
    try:
        upgrade(dsn, "head")
        pg = PostgresSettings(dsn=dsn)
        t0 = time.monotonic()
        with connect(pg) as conn:
            load_movielens(conn, read_movielens())
        loaded_s = time.monotonic() - t0
        fast = RecommenderSettings(
            postgres=pg,
            model=ModelSettings(tune_epochs=False),
            als=AlsSettings(tune=False),
            ease=EaseSettings(tune=False),
            rp3beta=Rp3Settings(tune=False),
        )
        outcome = run_training(fast, progress=stderr_progress)
        trials, in_app = _serve_and_load(stack, dsn)
        print(_table(outcome, loaded_s, trials, in_app)[1].markdown())
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


#: a known user whose history changes after training (ratings landed just before serving):
#: answered from the fresh history, scored at request time
FRESH_USER = 1
#: the server configurations: history cached (the default TTL) and read on every request
CONFIGS: dict[str, dict[str, str]] = {"": {}, "u": {"CINEPULSE_HISTORY__TTL_S": "0"}}


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


def _serve_and_load(
    stack: Stack, dsn: str
) -> tuple[dict[str, list[Trial]], dict[str, list[float]]]:
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
            trials[config + key].append(once(path, seconds, qps))
            s1, n1 = _in_app(server.url)
            in_app[config + key].append((s1 - s0) / max(n1 - n0, 1) * 1000)

        for _ in range(ROUNDS):  # interleaved: drift hits every path alike
            for key, path in paths.items():
                once(path, WARMUP_S)
                measured(key, path, TRIAL_S)
        # the target's load, on the ceiling and on the model's paths
        for key in steady:
            measured(f"s{key}", paths[key], TRIAL_S * 2, qps=STEADY_RATE / CONCURRENCY)
        if "f" in paths:  # the fresh path was taken, reading the facts as configured
            text = httpx.get(f"{server.url}/metrics", timeout=10).text
            if 'path="fresh"' not in text:
                raise RuntimeError("no answer took the fresh path")


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
    quality = {}
    for name, r in m["candidates"].items():
        quality[name] = table.add(
            f"{LABELS[name]} ({_params(name, r['params'])})",
            {
                f"NDCG@{k}": Figure(r[f"ndcg@{k}"], better="higher", fmt=".4f"),
                f"P@{k}": Figure(r[f"precision@{k}"], better="higher", fmt=".4f"),
                f"R@{k}": Figure(r[f"recall@{k}"], better="higher", fmt=".4f"),
                f"validation NDCG@{k}": Figure(r[f"validation_ndcg@{k}"] or 0.0, fmt=".4f"),
                "train (with tuning)": Figure(r["train_seconds"], "s", fmt=".1f"),
                "fit": Figure(r["fit_seconds"], "s", fmt=".1f"),
            },
            baseline=name in ("als", "popularity"),
            short=LABELS[name],
        )
    served = m["served"]
    # the served family's row on the test part (its split model, before the refit)
    # (a baseline served is compared with itself: 1.0x, short of the aim, and it says so)
    chosen = quality[served["family"]]
    chosen.compare(f"NDCG@{k}", quality["als"], target=Target(">=", TARGET_VS_ALS), headline=True)
    chosen.compare(f"NDCG@{k}", quality["popularity"], target=Target(">=", TARGET_VS_POPULARITY))
    ci = m["ratios"].get(f"ndcg@{k}_vs_als_ci95")
    table.notes.append(
        f"served/ALS NDCG@{k} {m['ratios'][f'ndcg@{k}_vs_als']:.3f}x"
        + (f", paired bootstrap 95% interval over users {ci[0]:.3f}-{ci[1]:.3f}" if ci else "")
    )
    table.notes.append(
        f"served: {served['why']}; refitted on {served['refit_train_pairs']:,} pairs "
        f"({served['refit_seconds']:.1f}s) after selection. Targets: never below ALS (>= "
        f"{FLOOR_VS_ALS}x), aim >= {TARGET_VS_ALS}x; >= {TARGET_VS_POPULARITY}x popularity"
    )
    for skipped in m["skipped"]:
        table.notes.append(f"{skipped['family']} not trained: {skipped['reason']}")
    table.notes.append(
        f"the run: load {loaded_s:.1f}s, training job {outcome.seconds:.1f}s end to end "
        f"(read, split, every candidate with its tuning, refit, artefact, registry); model "
        f"{outcome.version} "
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
        "f": "(f) user with events since training: fresh history (cached), scored",
        "sa": f"(a) at a steady {STEADY_RATE} req/s",
        "sb": f"(b) at a steady {STEADY_RATE} req/s",
        "sf": f"(f) at a steady {STEADY_RATE} req/s",
        "ua": "(a) GET /healthz, history TTL 0",
        "uf": "(f) history read from the facts on every request (TTL 0), scored",
        "usa": f"(a) TTL 0, at a steady {STEADY_RATE} req/s",
        "usf": f"(f) TTL 0, at a steady {STEADY_RATE} req/s",
    }
    shorts = {
        "a": "(a) /healthz",
        "b": "(b) known user, top-N",
        "c": "(c) known user, scored",
        "d": "(d) cold-start, genre",
        "e": "(e) similar movies",
        "f": "(f) fresh, cached",
        "sa": f"(a) /healthz, steady {STEADY_RATE}/s",
        "sb": f"(b) known user, steady {STEADY_RATE}/s",
        "sf": f"(f) fresh, steady {STEADY_RATE}/s",
        "ua": "(a) /healthz, TTL 0",
        "uf": "(f) fresh, TTL 0",
        "usa": f"(a) /healthz, TTL 0, steady {STEADY_RATE}/s",
        "usf": f"(f) fresh, TTL 0, steady {STEADY_RATE}/s",
    }
    rows = {}
    for key, ts in trials.items():
        steady = key == "sb"  # the target's load (the fresh rows: against /healthz)
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
            baseline=key in ("a", "sa", "ua", "usa"),
            short=shorts[key],
        )
    for key in ("b", "c", "d", "e"):
        rows[key].compare("req/s", rows["a"])
    # request-time scoring against the same process's trivial /healthz (issue 23): saturated,
    # req/s at least 0.2x; at the target's load, p99 at most 3x
    for f, a, sf, sa in (("f", "a", "sf", "sa"), ("uf", "ua", "usf", "usa")):
        rows[f].compare("req/s", rows[a], target=Target(">=", FRESH_RPS_VS_TRIVIAL))
        rows[sf].compare("p99", rows[sa], target=Target("<=", FRESH_P99_VS_TRIVIAL))
    # at the target's load: the same process's trivial /healthz at the same load
    rows["sb"].compare("p99", rows["sa"])
    serving.notes.append(
        f"(f) ml-{FRESH_USER} rated 5 movies after the model was trained: their history is "
        "read from the facts at request time (cached CINEPULSE_HISTORY__TTL_S, 5 s; the TTL 0 "
        "rows read it on every request, a second server process) and scored by the served "
        "model, seen movies left out"
    )
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


LABELS = {
    "popularity": "popularity",
    "als": "implicit ALS",
    "lightfm": "LightFM",
    "rp3beta": "RP3beta",
    "ease": "EASE^R",
    "blend": "blend",
}


def _params(family: str, p: dict[str, Any]) -> str:
    if family == "lightfm":
        return (
            f"{p['loss']}, {p['no_components']} components, {p['epochs']} of {p['max_epochs']} "
            f"epochs, features: identity + {' + '.join(p['item_features'])}"
        )
    if family == "als":
        keys = ("factors", "regularization", "alpha", "iterations")
        return ", ".join(f"{k}={p[k]}" for k in keys)
    if family == "ease":
        return f"lambda={p['lam']:g}, {p['items']:,} items"
    if family == "rp3beta":
        return f"alpha={p['alpha']:g}, beta={p['beta']:g}, {p['neighbours']} neighbours"
    if family == "blend":
        return f"{p['factors']} + {p['item']}, item weight {p['weight']:g}"
    return "users per movie in the training part"


# --- quality alone, without the stack ---------------------------------------------------------
def movielens_data() -> WarehouseData:
    """MovieLens-small as the warehouse hands it to the trainer (the same events, catalogue
    and tags), read straight from the dataset files: no database needed."""
    ml = read_movielens()
    e = {c: EVENT_COLUMNS.index(c) for c in ("user_id", "movie_id", "rating", "occurred_at")}
    rows = ml.ratings
    events = Events(
        user_id=np.array([r[e["user_id"]] for r in rows], dtype=np.str_),
        movie_id=np.array([r[e["movie_id"]] for r in rows], dtype=np.int64),
        kind=np.array(["rate"] * len(rows), dtype=np.str_),
        value=np.array([r[e["rating"]] for r in rows], dtype=np.float64),
        completed=np.zeros(len(rows), dtype=bool),
        at=np.array([r[e["occurred_at"]].timestamp() for r in rows], dtype=np.float64),
    )
    c = {name: MOVIE_COLUMNS.index(name) for name in MOVIE_COLUMNS}
    titles: dict[int, str] = {}
    genres: dict[int, list[str]] = {}
    tags: list[tuple[int, str]] = []
    for m in ml.movies:
        movie = int(m[c["movie_id"]])
        titles[movie] = m[c["title"]]
        genres[movie] = [g["name"] for g in json.loads(m[c["genres"]])]
        tags += [(movie, f"genre:{g}") for g in genres[movie]]
        tags += [(movie, f"keyword:{x['id']}") for x in json.loads(m[c["keywords"]])]
        tags += [(movie, f"company:{x['id']}") for x in json.loads(m[c["companies"]])]
    ids = np.array(sorted(titles), dtype=np.int64)
    now = datetime.now(UTC)
    return WarehouseData(events, Catalogue(ids, titles, genres, tags), now, now)


def quality() -> None:
    """``python -m bench.recommender``: every candidate on MovieLens-small with the default
    settings and the trainer's own split (no database, no serving), one JSON line each."""
    settings = RecommenderSettings(postgres=PostgresSettings(dsn="postgresql://unused@x/x"))
    m = train_and_evaluate(movielens_data(), settings, stderr_progress).metrics(10)
    for name, r in m["candidates"].items():
        print(json.dumps({"candidate": name} | {k: v for k, v in r.items() if k != "params"}))
    print(json.dumps({"served": m["served"], "ratios": m["ratios"], "skipped": m["skipped"]}))


if __name__ == "__main__":
    serving() if sys.argv[1:] == ["serving"] else quality()
