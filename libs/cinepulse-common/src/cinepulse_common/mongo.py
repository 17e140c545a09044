"""MongoDB-protocol client factory (pymongo). Works against mongod and FerretDB alike."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

from cinepulse_common.settings import MongoSettings


def make_client(s: MongoSettings, **kwargs: Any) -> MongoClient[dict[str, Any]]:
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": s.server_selection_timeout_ms,
        "tz_aware": True,
    }
    return MongoClient(s.url.get_secret_value(), **(options | kwargs))


def raw_database(client: MongoClient[dict[str, Any]], s: MongoSettings) -> Database[dict[str, Any]]:
    return client[s.database]


def check_mongo(s: MongoSettings) -> None:
    with make_client(s, serverSelectionTimeoutMS=2000) as client:
        client.admin.command("ping")
