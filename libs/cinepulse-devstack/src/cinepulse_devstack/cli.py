"""``cinepulse-stack``: the local stack (real Kafka, PostgreSQL, MongoDB protocol,
Prometheus) as processes on loopback, all state under ``.stack/``.

  cinepulse-stack install         fetch/build every component (cached in ~/.cache/cinepulse)
  cinepulse-stack up [NAME...]    start what is not running, wait until each answers
                  [--services]    ... and the services (event-gateway, archiver)
  cinepulse-stack status          one line per component; exit 1 if any is down
  cinepulse-stack down [NAME...]  stop; nothing is left running
  cinepulse-stack env             print `export ...` lines for services and tools
  cinepulse-stack migrate         apply the warehouse migrations to the stack's database
  cinepulse-stack smoke           one event through Kafka into PostgreSQL staging
  cinepulse-stack send-events     synthetic events through the gateway; where they landed
  cinepulse-stack load-movies     tmdb-fetcher full load from the offline TMDB server
  cinepulse-stack versions        the version of every component
  cinepulse-stack demo            everything, end to end, on sample data (make demo)
  cinepulse-stack doctor          check the Kafka topics' durability settings (replication,
                                  min.insync.replicas, unclean election, retention); exit 1
                                  on FAIL (--bootstrap: another Kafka, e.g. an external one)
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time

from cinepulse_devstack.stack import Stack, StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cinepulse-stack", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("install", "up", "down", "status"):
        p = sub.add_parser(name)
        p.add_argument(
            "components",
            nargs="*",
            help="kafka, postgres, mongo, prometheus, event-gateway, archiver",
        )
        if name == "up":
            p.add_argument("--services", action="store_true", help="also start the services")
    movies = sub.add_parser("load-movies")
    movies.add_argument("--rate", type=float, default=200.0, help="TMDB requests per second")
    send = sub.add_parser("send-events")
    send.add_argument("--count", type=int, default=2000, help="events to send (default 2000)")
    send.add_argument("--rate", type=float, default=2000.0, help="events per second")
    send.add_argument("--seed", type=int, default=42)
    demo = sub.add_parser("demo", help="the end-to-end demo (see cinepulse_devstack.demo)")
    demo.add_argument("--users", type=int, help="replay only the first N MovieLens users")
    demo.add_argument("--rate", type=float, default=1000.0, help="events per second")
    demo.add_argument(
        "--span-days", type=float, default=28.0, help="replay the history into the last N days"
    )
    demo.add_argument(
        "--synthetic", type=int, metavar="N", help="N synthetic events instead of MovieLens"
    )
    from cinepulse_common import kafka_doctor

    doctor = sub.add_parser(
        "doctor", help="check the Kafka topics' settings (docs/operations/reliability.md)"
    )
    kafka_doctor.add_arguments(doctor)
    sub.add_parser("env")
    sub.add_parser("migrate")
    sub.add_parser("smoke")
    sub.add_parser("versions")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="[stack] %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    stack = Stack()
    try:
        return _dispatch(stack, args)
    except StackError as exc:
        print(f"cinepulse-stack {args.cmd}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # migrate/smoke failures: one line and a non-zero exit
        print(f"cinepulse-stack {args.cmd} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _require_up(stack: Stack, names: list[str]) -> None:
    down = [s for s in stack.status(names) if not s.ok]
    if down:
        detail = "; ".join(f"{s.name} {s.detail}" for s in down)
        services = {c.name for c in stack.services}
        fix = "`make services`" if services & set(names) else "`make up`"
        raise StackError(f"needs {', '.join(names)} running: {detail}. Run {fix} first.")


def _dispatch(stack: Stack, args: argparse.Namespace) -> int:
    names = getattr(args, "components", None) or None
    if args.cmd == "install":
        stack.install(names)
    elif args.cmd == "up":
        t0 = time.monotonic()
        started = stack.up(names)
        if args.services:  # the product's services (the offline TMDB is started by name)
            started += stack.up([stack.gateway.name, stack.archiver.name])
        print(
            f"stack up in {time.monotonic() - t0:.1f}s "
            f"(started: {', '.join(started) or 'none, all were running'}); "
            f"env: {stack.env_file}"
        )
    elif args.cmd == "down":
        stack.down(names)
        print("stack down")
    elif args.cmd == "status":
        statuses = stack.status(names)
        if not names:  # services count when they were started (they have a pid file)
            started_services = [s.name for s in stack.services if s.pidfile.exists()]
            statuses += stack.status(started_services) if started_services else []
        width = max(len(s.name) for s in statuses)
        for s in statuses:
            print(f"{s.name:<{width}}  {s.detail}")
        return 0 if all(s.ok for s in statuses) else 1
    elif args.cmd == "send-events":
        return _send_events(stack, args)
    elif args.cmd == "load-movies":
        return _load_movies(stack, args)
    elif args.cmd == "demo":
        from cinepulse_devstack.demo import DemoOptions, run_demo

        for name in ("users", "synthetic"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise StackError(f"--{name} must be 1 or more, not {value}")
        if args.rate <= 0 or args.span_days <= 0:
            raise StackError("--rate and --span-days must be positive")
        return run_demo(
            stack,
            DemoOptions(
                users=args.users,
                rate=args.rate,
                span_days=args.span_days,
                synthetic=args.synthetic,
            ),
        )
    elif args.cmd == "env":
        for k, v in sorted(stack.env().items()):
            print(f"export {k}={shlex.quote(v)}")
    elif args.cmd == "migrate":
        _require_up(stack, ["postgres"])
        from cinepulse_migrations.cli import upgrade

        upgrade(stack.postgres.admin_dsn(), "head")
        print("migrations applied (head)")
    elif args.cmd == "smoke":
        _require_up(stack, ["postgres", "kafka"])
        from pydantic import SecretStr

        from cinepulse_common.settings import KafkaSettings, PostgresSettings
        from cinepulse_devstack.smoke import run_smoke

        r = run_smoke(
            KafkaSettings(bootstrap_servers=stack.kafka.bootstrap),
            PostgresSettings(dsn=SecretStr(stack.postgres.admin_dsn())),
        )
        print(
            f"smoke ok: event {r.event_id} -> {r.topic}[{r.partition}]@{r.offset} "
            f"-> stg_user_logs in {r.seconds:.2f}s"
        )
    elif args.cmd == "doctor":
        from cinepulse_common import kafka_doctor
        from cinepulse_common.settings import KafkaSettings

        if not args.bootstrap:
            _require_up(stack, ["kafka"])
        kafka = KafkaSettings(bootstrap_servers=args.bootstrap or stack.kafka.bootstrap)
        return kafka_doctor.run(kafka, args)
    elif args.cmd == "versions":
        for name, version in stack.versions().items():
            print(f"{name}: {version}")
    return 0


def _load_movies(stack: Stack, args: argparse.Namespace) -> int:
    """The fetcher's own CLI (as Airflow runs it), pointed at the offline TMDB server."""
    import os
    import subprocess

    _require_up(stack, ["postgres", "kafka", "mongo", "tmdb-offline"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEPULSE_")}
    env |= stack.infra_env() | {
        "CINEPULSE_TMDB__BASE_URL": stack.tmdb_offline.url,
        "CINEPULSE_TMDB__TOKEN": stack.tmdb_offline.token,
        "CINEPULSE_TMDB__RATE_PER_S": str(args.rate),
        "CINEPULSE_LOG_JSON": "false",
    }
    # a synthetic-events demo leaves the server on its synthetic catalogue: say which one
    served = stack.tmdb_offline.served_catalogue() or "an unknown catalogue"
    print(
        f"loading TMDB metadata from {stack.tmdb_offline.url} ({served}; the demo picks the "
        "catalogue its events name, `make down` resets it) ...",
        file=sys.stderr,
    )
    return subprocess.run(
        [sys.executable, "-m", "cinepulse_tmdb_fetcher", "full"], env=env, check=False
    ).returncode


def _send_events(stack: Stack, args: argparse.Namespace) -> int:
    _require_up(stack, ["kafka", "mongo", "event-gateway", "archiver"])
    from pydantic import SecretStr

    from cinepulse_common.settings import MongoSettings
    from cinepulse_devstack.demo_events import send_events, synthetic_events, wait_archived

    print(f"sending {args.count} synthetic events to {stack.gateway.url} ...", file=sys.stderr)
    r = send_events(
        stack.gateway.url,
        stack.gateway.demo_key(),
        synthetic_events(args.count, args.seed),
        rate_per_s=args.rate,
    )
    mongo = MongoSettings(url=SecretStr(stack.mongo.url))
    archived, waited = wait_archived(mongo, r.accepted_ids)
    rows = [
        ("events sent", r.sent),
        ("acknowledged by the gateway (in Kafka)", r.accepted),
        ("rejected as invalid", r.rejected),
        ("not acknowledged (503)", r.unavailable),
        ("acknowledged and archived in MongoDB", archived),
    ]
    modelled = None
    if stack.spark_stream.pidfile.exists():  # the streaming job runs: wait for the facts
        from cinepulse_devstack.demo_events import wait_modelled

        modelled, modelled_s = wait_modelled(stack.postgres.admin_dsn(), r.accepted_ids)
        rows.append(("acknowledged and modelled into facts (Spark)", modelled))
    width = max(len(k) for k, _ in rows)
    print(f"\n{'':-<{width + 10}}")
    for k, v in rows:
        print(f"{k:<{width}}  {v:>8}")
    print(f"{'':-<{width + 10}}")
    print(
        f"sent in {r.seconds:.1f}s ({r.sent / max(r.seconds, 1e-9):,.0f} events/s); "
        f"archived within {waited:.1f}s after the last answer"
    )
    if modelled is not None:
        print(f"facts visible within {modelled_s:.1f}s after archiving")
    print(f"live counters: {stack.archiver.url}/counters/trending")
    lost = r.accepted - archived
    if lost:
        print(f"{lost} acknowledged events are not in MongoDB", file=sys.stderr)
        return 1
    if modelled is not None and modelled < r.accepted:
        print(f"{r.accepted - modelled} acknowledged events are not facts yet", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
