"""The id drill (issue 21, "one event-id registry across event types"): events sent through
the real gateway, then a share of the same ``event_id`` values sent again from a second
write key with another event type or another payload, and a share sent again unchanged.
Required: nothing acknowledged lost, one fact per id (the first content's), every changed
resend quarantined as ``event_id_conflict``, the exact resends silent (no fact, no
quarantine row), and the reconciliation quiet."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from cinepulse_common.validation import EVENT_ID_CONFLICT
from cinepulse_devstack import Stack
from cinepulse_devstack.demo_events import send_events
from tests.drills.harness import (
    FACT_TABLES,
    DrillRow,
    Record,
    drill_events,
    now,
    raw_documents,
    staged,
    tally,
    wait_for,
    wait_quiet,
    window,
)

pytestmark = [pytest.mark.drill, pytest.mark.timeout(900)]


#: the second writer: another server key of the gateway (the stack's own is ``demo``)
SECOND = "drill-ids"
TABLE = dict(zip(("watch", "rate", "comment", "click"), FACT_TABLES, strict=True))
#: a valid payload of each type, for an event resent as another type
PAYLOADS: dict[str, dict[str, Any]] = {
    "watch": {"position_seconds": 30, "duration_seconds": 600},
    "rate": {"rating": 2.5},
    "comment": {"text": "Changed my mind about this one."},
    "click": {"target": "share"},
}


@pytest.fixture
def second_key(stack: Stack) -> Iterator[str]:
    """A second server write key, unthrottled like ``demo`` (the gateway reads its roles and
    limits at start: it is restarted with them, and again without them afterwards)."""
    gateway = stack.gateway
    key = gateway.client_key(SECOND)
    gateway.roles = json.dumps({"demo": "server", SECOND: "server"})
    gateway.rate_limits = json.dumps({"demo": "unlimited", SECOND: "unlimited"})
    gateway.stop()
    stack.up([gateway.name])
    try:
        yield key
    finally:
        del gateway.roles, gateway.rate_limits  # the class's own again
        gateway.stop()
        stack.up([gateway.name])


def _other_payload(e: dict[str, Any]) -> dict[str, Any]:
    """``e``'s payload changed, valid for its type."""
    p = dict(e["payload"])
    kind = e["event_type"]
    if kind == "watch":
        p["duration_seconds"] = p["duration_seconds"] + 60
    elif kind == "rate":
        p["rating"] = 1.0 if p["rating"] != 1.0 else 1.5
    elif kind == "comment":
        p["text"] = p["text"] + " (edited)"
    else:
        p["target"] = "share" if p["target"] != "share" else "poster"
    return p


def _quarantined(stack: Stack, ids: list[str]) -> list[tuple[str, str, str]]:
    with psycopg.connect(stack.postgres.admin_dsn()) as conn:
        return [
            (str(r[0]), str(r[1]), str(r[2]))
            for r in conn.execute(
                "SELECT event_id::text, rule, reason FROM quarantine"
                " WHERE event_id = ANY(%s::uuid[])",
                (ids,),
            )
        ]


def _fact_tables(stack: Stack, ids: list[str]) -> dict[str, list[str]]:
    """The fact tables holding each of ``ids``."""
    found: dict[str, list[str]] = {i: [] for i in ids}
    with psycopg.connect(stack.postgres.admin_dsn()) as conn:
        for table in FACT_TABLES:
            query = f"SELECT event_id::text FROM {table} WHERE event_id = ANY(%s::uuid[])"
            for (event_id,) in conn.execute(query, (ids,)):
                found[event_id].append(table)
    return found


def test_the_same_ids_resent_with_changed_payloads_and_types_from_two_keys(
    stack: Stack, second_key: str, record: Record
) -> None:
    t0, started = time.monotonic(), now()
    url, first_key = stack.gateway.url, stack.gateway.demo_key()
    originals = drill_events(600, seed=41)
    first = send_events(url, first_key, originals, batch_size=20, rate_per_s=150, progress=False)
    acked = set(first.accepted_ids)
    by_id = {e["event_id"]: e for e in originals if e["event_id"] in acked}
    ids = sorted(by_id)
    retyped = [
        {**by_id[i], "event_type": t, "payload": PAYLOADS[t]}
        for i in ids[0::6]
        for t in [next(k for k in PAYLOADS if k != by_id[i]["event_type"])]
    ]
    repaid = [{**by_id[i], "payload": _other_payload(by_id[i])} for i in ids[1::6]]
    exact = [dict(by_id[i]) for i in ids[2::6]]
    # resent later, as a client retries or another writer reuses ids: the originals are in
    # (within one micro-batch the first by Kafka position would win, whatever was sent first)
    wait_for(
        "the originals staged",
        lambda: len(staged(stack, ids)) == len(ids),
        timeout_s=240,
        interval_s=1.0,
    )
    # the second writer's changed copies, and exact resends from both keys
    second = send_events(
        url,
        second_key,
        [*retyped, *repaid, *exact[::2]],
        batch_size=20,
        rate_per_s=150,
        progress=False,
    )
    again = send_events(url, first_key, exact[1::2], batch_size=20, rate_per_s=150, progress=False)
    resent_acked = [*second.accepted_ids, *again.accepted_ids]
    changed = {e["event_id"] for e in (*retyped, *repaid)} & set(second.accepted_ids)
    exact_ids = {e["event_id"] for e in exact}
    report = wait_quiet(stack, *window(started, now()), [*acked, *resent_acked], [])
    held = wait_for(
        f"{len(changed)} changed resends quarantined",
        lambda: (rows := _quarantined(stack, ids)) and len(rows) >= len(changed) and rows,
        timeout_s=180,
    )
    t = tally(stack, [e["event_id"] for e in originals], sorted(acked))
    tables = _fact_tables(stack, ids)
    raw = raw_documents(stack, ids)
    sends = len(originals) + len(retyped) + len(repaid) + len(exact)
    conflicts = [h for h in held if h[1] == EVENT_ID_CONFLICT]
    record(
        DrillRow(
            drill="the same ids resent with changed payloads and types, from two keys",
            sent=sends,
            acknowledged=len(acked) + len(resent_acked),
            stored=t.stored,
            lost=t.lost,
            duplicated=t.duplicate_facts,
            seconds=time.monotonic() - t0,
            fault=(
                f"{len(retyped)} ids resent as another type and {len(repaid)} with another "
                f"payload from a second write key: {len(conflicts)} quarantined "
                f"{EVENT_ID_CONFLICT}; {len(exact)} exact resends (both keys): "
                f"{sum(1 for h in held if h[0] in exact_ids)} quarantined; "
                f"archived {t.archived:,}/{t.acknowledged:,}, modelled "
                f"{t.modelled:,}/{t.acknowledged:,}"
            ),
        )
    )
    assert first.accepted == len(originals) and len(resent_acked) == sends - len(originals)
    assert t.lost == 0, f"acknowledged but lost: {t.lost_examples}"
    assert t.duplicate_facts == 0, "an id with more than one fact"
    # one fact per id, in the first content's table (a resend as another type adds none)
    wrong = {i: f for i, f in tables.items() if f != [TABLE[by_id[i]["event_type"]]]}
    assert not wrong, f"ids whose facts are not the original's: {list(wrong.items())[:5]}"
    assert {h[0] for h in conflicts} == changed and len(conflicts) == len(changed)
    assert all("differs in" in h[2] for h in conflicts)
    retyped_reasons = [h[2] for h in conflicts if h[0] in {e["event_id"] for e in retyped}]
    assert all("event_type" in r for r in retyped_reasons) and retyped_reasons
    assert not exact_ids & {h[0] for h in held}, "an exact resend was quarantined"
    # every acknowledged send of an id is a raw document of its own (the archive keeps all)
    sent_per_id = {i: 1 for i in ids}
    for i in resent_acked:
        sent_per_id[i] += 1
    assert {i: raw[i] for i in ids} == sent_per_id
    assert report is not None and not report.drift, report and report.differences
