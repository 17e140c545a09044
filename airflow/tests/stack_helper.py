"""The airflow tests' bridge to the local stack, run with the *workspace's* Python
(``.venv/bin/python airflow/tests/stack_helper.py ...``): the Airflow environment has none
of the Cinepulse libraries, so provisioning reuses the workspace's own code (the dev stack,
the migrations, the archiver's document builder) rather than copying it.

  up                              start PostgreSQL, Kafka, MongoDB and Prometheus if they are
                                  down (JSON list of what it started)
  prometheus-url                  the local Prometheus' base URL
  register-target NAME PORT       make Prometheus scrape 127.0.0.1:PORT/metrics
  unregister-target NAME          stop that
  down NAME...                    stop those
  provision                       a migrated PostgreSQL database, a MongoDB database and a
                                  Kafka topic prefix of the test's own, and each service's
                                  login's DSN to that database (JSON on stdout)
  archive RESOURCES.json N AT [FIRST]
                                  N valid user events as the archiver stores them, arrived AT
                                  (at offsets FIRST.., default 0)
  movielens RESOURCES.json USERS  MovieLens-small's movies and the ratings of users 1..USERS
                                  into the warehouse (the recommender's training data)
  teardown RESOURCES.json         drop them
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # tests.factories


def provision() -> dict[str, Any]:
    from cinepulse_common import topics
    from cinepulse_common.kafka import ensure_topics, make_admin
    from cinepulse_common.settings import KafkaSettings
    from cinepulse_devstack import Stack
    from cinepulse_migrations.cli import upgrade
    from cinepulse_migrations.logins import SERVICES, login_name

    stack = Stack()
    uid = uuid.uuid4().hex[:10]
    db = f"t_airflow_{uid}"
    dsn = stack.postgres.create_database(db)
    upgrade(dsn, "head")
    # what the chart's logins Secret holds (<service>-dsn): each service's own login, a member
    # of its migration-0012 group only, read-only by default as the chart makes it
    # (cinepulse_migrations.logins); the roles are the cluster's, the DSNs this database's
    logins = {
        service: stack.postgres.login_role(
            login_name(service), group, read_only=read_only, database=db
        )
        for service, (group, read_only) in SERVICES.items()
    }
    prefix = f"taf{uid}."
    kafka = KafkaSettings(bootstrap_servers=stack.kafka.bootstrap, topic_prefix=prefix)
    ensure_topics(make_admin(kafka), [kafka.topic(t) for t in topics.ALL_TOPICS], partitions=1)
    return {
        "db": db,
        "dsn": dsn,  # the owner's: the tests' own setup and checks
        "logins": logins,
        "mongo_url": stack.mongo.url,
        "mongo_database": f"raw_taf{uid}",
        "kafka_bootstrap": stack.kafka.bootstrap,
        "topic_prefix": prefix,
    }


def archive(res: dict[str, Any], count: int, at: datetime, first: int = 0) -> list[str]:
    from tests.factories import event

    from cinepulse_archiver.documents import Source, to_document
    from cinepulse_common.mongo import make_client
    from cinepulse_common.settings import MongoSettings

    docs, ids = [], []
    for offset in range(first, first + count):
        record = event("rate", user_id=f"user-{offset % 7}", movie_id=550 + offset % 5)
        ids.append(record["event_id"])
        source = Source(f"{res['topic_prefix']}user_rating_log", 0, offset, b"k", None)
        docs.append(to_document(source, json.dumps(record).encode(), at, movie_topic=False)[1])
    mongo = MongoSettings(url=res["mongo_url"], database=res["mongo_database"])
    with make_client(mongo) as client:
        client[mongo.database]["user_logs"].insert_many(docs)
    return ids


def movielens(res: dict[str, Any], users: int) -> dict[str, int]:
    from cinepulse_common.postgres import connect
    from cinepulse_common.settings import PostgresSettings
    from cinepulse_devstack.movielens import load_movielens, read_movielens

    with connect(PostgresSettings(dsn=res["dsn"])) as conn:
        return load_movielens(conn, read_movielens(users=users))


def teardown(res: dict[str, Any]) -> None:
    from cinepulse_common import topics
    from cinepulse_common.kafka import delete_topics, make_admin
    from cinepulse_common.mongo import make_client
    from cinepulse_common.settings import KafkaSettings, MongoSettings
    from cinepulse_devstack import Stack

    stack = Stack()
    kafka = KafkaSettings(
        bootstrap_servers=res["kafka_bootstrap"], topic_prefix=res["topic_prefix"]
    )
    delete_topics(make_admin(kafka), [kafka.topic(t) for t in topics.ALL_TOPICS])
    mongo = MongoSettings(url=res["mongo_url"], database=res["mongo_database"])
    with make_client(mongo) as client:
        client.drop_database(mongo.database)
    stack.postgres.drop_database(res["db"])


def main(argv: list[str]) -> int:
    command, *rest = argv
    if command == "up":
        from cinepulse_devstack import Stack

        print(json.dumps(Stack().up(["postgres", "kafka", "mongo", "prometheus"])))
    elif command == "prometheus-url":
        from cinepulse_devstack import Stack

        print(Stack().prometheus.url)
    elif command == "register-target":
        from cinepulse_devstack import Stack

        Stack().prometheus.register_target(rest[0], int(rest[1]))
    elif command == "unregister-target":
        from cinepulse_devstack import Stack

        Stack().prometheus.unregister_target(rest[0])
    elif command == "down":
        from cinepulse_devstack import Stack

        Stack().down(rest)
    elif command == "provision":
        print(json.dumps(provision()))
    elif command == "archive":
        res = json.loads(Path(rest[0]).read_text())
        first = int(rest[3]) if len(rest) > 3 else 0
        print(json.dumps(archive(res, int(rest[1]), datetime.fromisoformat(rest[2]), first)))
    elif command == "movielens":
        res = json.loads(Path(rest[0]).read_text())
        print(json.dumps(movielens(res, int(rest[1]))))
    elif command == "teardown":
        teardown(json.loads(Path(rest[0]).read_text()))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
