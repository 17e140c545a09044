"""The model registry, ``recsys.models`` (migration 0007): one row per trained version.

A training run inserts its version as ``candidate`` (metrics, window, parameters, counts,
artefact and its SHA-256), then, in one transaction under an advisory lock, makes it
``published`` or ``rejected`` with the reason. The lock serialises two runs that decide at
once, and :func:`decide` refuses to publish over a model other than the one compared with.
Servers read the newest published version (:data:`NEWEST_PUBLISHED`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

#: pg_advisory_xact_lock key of the publish decision
PUBLISH_LOCK = 0x7265_6373_7973  # "recsys"

NEWEST_PUBLISHED = """
SELECT version, published_at FROM recsys.models
WHERE status = 'published' ORDER BY published_at DESC, version DESC LIMIT 1
"""

ARTEFACT = "SELECT artefact, artefact_sha256 FROM recsys.models WHERE version = %(version)s"

LIST = """
SELECT version, status, created_at, published_at, data_from, data_to, n_users, n_items,
       n_interactions, metrics, reason, octet_length(artefact) AS artefact_bytes
FROM recsys.models ORDER BY created_at DESC, version DESC LIMIT %(limit)s
"""


@dataclass(frozen=True)
class Candidate:
    version: str
    data_from: datetime | None
    data_to: datetime | None
    n_users: int
    n_items: int
    n_interactions: int
    params: dict[str, Any]
    metrics: dict[str, Any]
    artefact: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.artefact).hexdigest()


class ArtefactCorruptError(RuntimeError):
    pass


def insert_candidate(conn: psycopg.Connection[Any], c: Candidate) -> None:
    conn.execute(
        """INSERT INTO recsys.models (version, status, data_from, data_to, n_users, n_items,
               n_interactions, params, metrics, artefact, artefact_sha256)
           VALUES (%s, 'candidate', %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            c.version,
            c.data_from,
            c.data_to,
            c.n_users,
            c.n_items,
            c.n_interactions,
            Jsonb(c.params),
            Jsonb(c.metrics),
            c.artefact,
            c.sha256,
        ),
    )


def newest_published(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute(NEWEST_PUBLISHED).fetchone()
    return None if row is None else str(row[0])


def artefact_bytes(conn: psycopg.Connection[Any], version: str) -> bytes:
    row = conn.execute(ARTEFACT, {"version": version}).fetchone()
    if row is None or row[0] is None:
        raise LookupError(f"model {version} has no artefact")
    return verified(bytes(row[0]), row[1], version)


def verified(data: bytes, sha256: str | None, version: str) -> bytes:
    """``data``, after checking it against the registry's digest."""
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ArtefactCorruptError(f"model {version}: artefact does not match its sha256")
    return data


def decide(
    conn: psycopg.Connection[Any],
    version: str,
    publish: bool,
    reason: str,
    compared_with: str | None,
    metrics: dict[str, Any],
) -> tuple[bool, str]:
    """Publish or reject ``version`` in one transaction; returns (published, reason). A
    model published meanwhile by another run (not ``compared_with``) turns a publish into a
    rejection: the comparison no longer holds."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PUBLISH_LOCK,))
        current = newest_published(conn)
        if publish and current != compared_with:
            publish = False
            reason = (
                f"model {current} was published while this run evaluated against "
                f"{compared_with or 'nothing'}; train again to compare with it"
            )
        conn.execute(
            """UPDATE recsys.models
               SET status = %s, reason = %s, metrics = %s,
                   published_at = CASE WHEN %s THEN now() END
               WHERE version = %s AND status = 'candidate'""",
            ("published" if publish else "rejected", reason, Jsonb(metrics), publish, version),
        )
    return publish, reason


def list_models(conn: psycopg.Connection[Any], limit: int = 20) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(LIST, {"limit": limit})
        return cur.fetchall()
