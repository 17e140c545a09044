"""tmdb-fetcher: a full load of the 3,000-movie set through the offline TMDB server, at the
default request-rate limit and with the limit lifted, in one run.

Each load gets its own database, MongoDB database and topic prefix, so both write every
movie. Reported: movies/s, wall time, requests, and the share of the request slots' time
spent waiting on the client-side rate limiter (limiter wait / (wall x concurrency)).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from pathlib import Path

from pydantic import SecretStr

from bench.report import Figure, Table
from cinepulse_common import topics
from cinepulse_common.kafka import delete_topics, ensure_topics, make_admin
from cinepulse_common.mongo import make_client
from cinepulse_common.settings import KafkaSettings, MongoSettings, PostgresSettings
from cinepulse_devstack import Stack, tmdb_offline
from cinepulse_devstack.procs import spawn, terminate, wait_until
from cinepulse_migrations.cli import upgrade
from cinepulse_tmdb_fetcher.__main__ import EXIT_OK
from cinepulse_tmdb_fetcher.__main__ import run as fetch_run
from cinepulse_tmdb_fetcher.settings import TmdbFetcherSettings, TmdbSettings

LIFTED = 1_000_000.0  # requests/s: no limit in practice


def _load(stack: Stack, base_url: str, rate: float) -> dict[str, float]:
    tag = secrets.token_hex(3)
    db = f"bench_tmdb_{tag}"
    dsn = stack.postgres.create_database(db, replace=True)
    upgrade(dsn, "head")
    kafka = KafkaSettings(bootstrap_servers=stack.kafka.bootstrap, topic_prefix=f"bench-{tag}-")
    admin = make_admin(kafka)
    ensure_topics(admin, [kafka.topic(topics.MOVIE)])
    mongo = MongoSettings(url=SecretStr(stack.mongo.url), database=f"bench_tmdb_{tag}")
    token = SecretStr(tmdb_offline.DEFAULT_TOKEN)
    tmdb = TmdbSettings(base_url=base_url, token=token, rate_per_s=rate)
    settings = TmdbFetcherSettings(
        kafka=kafka,
        postgres=PostgresSettings(dsn=SecretStr(dsn)),
        mongo=mongo,
        tmdb=tmdb,
    )
    try:
        t0 = time.monotonic()
        code, fetcher = asyncio.run(
            fetch_run(settings, argparse.Namespace(mode="full", ids=[], dry_run=False))
        )
        wall = time.monotonic() - t0
        if code != EXIT_OK or fetcher.counts.updated != 3000:
            raise RuntimeError(f"full load failed: exit {code}, counts {fetcher.counts}")
        return {
            "movies": fetcher.counts.updated,
            "wall": wall,
            "limiter_share": fetcher.client.rate_wait_s / (wall * tmdb.concurrency),
        }
    finally:
        delete_topics(admin, [kafka.topic(topics.MOVIE)])
        with make_client(mongo) as client:
            client.drop_database(mongo.database)
        stack.postgres.drop_database(db)


def run(stack: Stack) -> Table:
    if not tmdb_offline.DEFAULT_CSV.exists():
        raise RuntimeError(f"the TMDB data set is missing: {tmdb_offline.DEFAULT_CSV}")
    port = 18390
    log = Path(stack.cfg.root) / "bench-tmdb-offline.log"
    pidfile = Path(stack.cfg.root) / "bench-tmdb-offline.pid"
    pid = spawn(
        [sys.executable, "-m", "cinepulse_devstack.tmdb_offline", "--port", str(port)],
        log=log,
        pidfile=pidfile,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        wait_until(
            lambda: httpx.get(base + "/__admin/stats", timeout=1).raise_for_status(),
            timeout_s=30,
            alive=lambda: True,
            what="offline TMDB server",
            log=log,
        )
        default_rate = TmdbSettings.model_fields["rate_per_s"].default
        results = {
            "default": _load(stack, base, default_rate),
            "lifted": _load(stack, base, LIFTED),
        }
    finally:
        terminate(pid)
        pidfile.unlink(missing_ok=True)

    table = Table(
        "tmdb-fetcher: full load of 3,000 movies through the offline TMDB server", "rate limit"
    )
    rows = {}
    for name, label in (("default", f"default ({default_rate:g} req/s)"), ("lifted", "lifted")):
        r = results[name]
        rows[name] = table.add(
            label,
            {
                "movies/s": Figure(
                    r["movies"] / r["wall"], "movies/s", better="higher", fmt=",.1f"
                ),
                "wall": Figure(r["wall"], "s", fmt=".1f"),
                "limiter wait share": Figure(100 * r["limiter_share"], "%"),
            },
            baseline=name == "lifted",
            short=f"{name} limit",
        )
    rows["default"].compare("movies/s", rows["lifted"], headline=True)
    table.notes.append(
        "each load: discover over release-date windows, one details request per movie "
        "(append_to_response=keywords,credits), Kafka + raw.movies + stg_movies writes per "
        "chunk of 100; limiter wait share = time request slots waited on the limiter / "
        "(wall x concurrency 8)"
    )
    return table
