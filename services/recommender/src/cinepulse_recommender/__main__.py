"""``cinepulse-recommender``: train (the Job Airflow runs), list the registry, serve.

  cinepulse-recommender train            train every candidate, serve the best on validation
                                         unless a baseline beats it, publish if better than
                                         the published model (or the first)
  cinepulse-recommender models [--limit N]   the registry's latest versions, one JSON line each
  cinepulse-recommender serve [--host --port]  the HTTP API (port 8001)

``train`` writes progress to stderr and one JSON summary line to stdout. Exit codes: 0 done
(the summary's ``status`` says ``published`` or ``rejected``, i.e. not better); 2 bad
configuration; 4 PostgreSQL unreachable; 1 anything else (e.g. too little data to evaluate).
Configuration: CINEPULSE_POSTGRES__DSN and the CINEPULSE_MODEL__*, CINEPULSE_ALS__*,
CINEPULSE_WEIGHTS__*, CINEPULSE_EVALUATION__*, CINEPULSE_EASE__*, CINEPULSE_RP3BETA__*
variables (see docs/recommender.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

import psycopg

from cinepulse_common.logging import configure_logging
from cinepulse_common.postgres import check_postgres, connect
from cinepulse_common.serving import serve_http
from cinepulse_common.settings import load_settings
from cinepulse_recommender import __version__
from cinepulse_recommender.settings import RecommenderSettings

if TYPE_CHECKING:  # the training module imports the model libraries: only when training
    from cinepulse_recommender.training import Outcome

PROG = "cinepulse-recommender"
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_UNREACHABLE = 0, 1, 2, 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="train, evaluate and maybe publish a model")
    models = sub.add_parser("models", help="list model versions")
    models.add_argument("--limit", type=int, default=20)
    sub.add_parser("serve", help="serve the HTTP API", add_help=False)
    return parser


def _settings() -> RecommenderSettings | None:
    try:
        return load_settings(RecommenderSettings)
    except SystemExit as exc:  # load_settings' message names each bad variable
        print(exc.code, file=sys.stderr)
        return None


def _print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, default=str), flush=True)


def _unreachable(settings: RecommenderSettings) -> str | None:
    try:
        check_postgres(settings.postgres)
    except psycopg.Error as exc:
        return f"PostgreSQL unreachable: {str(exc).strip().splitlines()[0]}"
    return None


def train(settings: RecommenderSettings) -> int:
    """One training run; its outcome is pushed to the Pushgateway (when set) either way."""
    from cinepulse_recommender import training_metrics

    started = time.monotonic()
    outcome = None
    try:
        code, outcome = _train(settings)
        return code
    finally:  # an unexpected error too: the Job's failure shows as an old last success
        training_metrics.record(
            succeeded=outcome is not None,
            seconds=time.monotonic() - started,
            published=bool(outcome and outcome.published),
            pairs=outcome.counts.get("pairs", 0) if outcome else 0,
        )
        training_metrics.push(settings.pushgateway_url, succeeded=outcome is not None)


def _train(settings: RecommenderSettings) -> tuple[int, Outcome | None]:
    from cinepulse_recommender.training import NotEnoughDataError, run_training

    problem = _unreachable(settings)
    if problem:
        print(f"{PROG} train: {problem}", file=sys.stderr)
        return EXIT_UNREACHABLE, None
    try:
        outcome = run_training(settings)
    except NotEnoughDataError as exc:
        print(f"{PROG} train: not enough data: {exc}", file=sys.stderr)
        _print_json({"status": "failed", "reason": f"not enough data: {exc}"})
        return EXIT_FAILED, None
    except psycopg.OperationalError as exc:
        print(f"{PROG} train: PostgreSQL failed: {exc}", file=sys.stderr)
        _print_json({"status": "failed", "reason": f"PostgreSQL failed: {exc}"})
        return (EXIT_UNREACHABLE if settings and _unreachable(settings) else EXIT_FAILED), None
    _print_json(outcome.summary())
    return EXIT_OK, outcome


def list_models(settings: RecommenderSettings, limit: int) -> int:
    from cinepulse_recommender.registry import list_models as rows

    problem = _unreachable(settings)
    if problem:
        print(f"{PROG} models: {problem}", file=sys.stderr)
        return EXIT_UNREACHABLE
    with connect(settings.postgres) as conn:
        for row in rows(conn, limit):
            k = row["metrics"].get("k", 10)
            _print_json(
                {
                    "version": row["version"],
                    "status": row["status"],
                    "created_at": row["created_at"],
                    "published_at": row["published_at"],
                    "data_from": row["data_from"],
                    "data_to": row["data_to"],
                    "users": row["n_users"],
                    "movies": row["n_items"],
                    "pairs": row["n_interactions"],
                    "served": row["metrics"].get("served", {}).get("family", "lightfm"),
                    f"ndcg@{k}": row["metrics"].get("model", {}).get(f"ndcg@{k}"),
                    f"popularity_ndcg@{k}": row["metrics"].get("popularity", {}).get(f"ndcg@{k}"),
                    f"als_ndcg@{k}": row["metrics"].get("als", {}).get(f"ndcg@{k}"),
                    "artefact_bytes": row["artefact_bytes"],
                    "reason": row["reason"],
                }
            )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        from cinepulse_recommender.app import create_app

        serve_http(
            "recommender",
            __version__,
            RecommenderSettings,
            create_app,
            "Serve recommendations from the published model.",
            argv[1:],
        )
        return EXIT_OK
    args = _parser().parse_args(argv)
    if args.command == "models" and args.limit < 1:
        _parser().error("--limit must be at least 1")
    settings = _settings()
    if settings is None:
        return EXIT_CONFIG
    # logs go to stderr: stdout carries only the JSON lines
    configure_logging("recommender", settings.log_level, settings.log_json)
    import logging

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    if args.command == "train":
        try:
            return train(settings)
        except Exception as exc:  # exit 1 with the reason; the traceback for the logs
            import traceback

            traceback.print_exc(file=sys.stderr)
            _print_json({"status": "failed", "reason": f"{type(exc).__name__}: {exc}"})
            return EXIT_FAILED
    return list_models(settings, args.limit)


if __name__ == "__main__":
    raise SystemExit(main())
