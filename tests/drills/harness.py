"""What every fault drill shares: a steady sender through the real gateway, the counts of
where each event landed, a wait until the pipeline is quiet, and the report row.

Counting, per event id the drill sent:

* **acknowledged**: the gateway answered ``accepted`` (a 202 batch item: Kafka's ``acks=all``
  was in). Items answered ``unavailable`` (503) are not acknowledged; they may still land
  (the producer keeps trying a little after the HTTP deadline), and are allowed to.
* **stored**: acknowledged ids that have a raw document in MongoDB ``raw.user_logs`` *and* a
  fact (or a quarantine row) in PostgreSQL: the two ends of the pipeline.
* **lost**: acknowledged ids missing from either store.
* **duplicated**: fact rows beyond one per event id (the four fact tables together) plus raw
  documents beyond one per event id, over every id sent (acknowledged or not). The drills'
  client never resends, so a second raw document could only be a second Kafka record (the id
  drill, ``test_drills_ids.py``, resends on purpose: it counts duplicate facts here and raw
  documents per acknowledged send itself). A resend under a taken id with other content is
  quarantined (``event_id_conflict``) while the id keeps its one fact: such an id counts as
  modelled once, by its fact.

"Quiet" is the project's own reconciliation (``cinepulse_quality``'s ``reconcile``) over the
drill's Kafka window coming back without drift: every record of the window archived and
modelled, every acknowledged id among the records.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from cinepulse_common.mongo import make_client
from cinepulse_common.settings import KafkaSettings, MongoSettings, PostgresSettings
from cinepulse_devstack import Stack
from cinepulse_devstack.demo_events import SendResult, send_events, synthetic_events

FACT_TABLES = ("fact_watch", "fact_rating", "fact_comment", "fact_click")


# --------------------------------------------------------------------------- the report


@dataclass
class DrillRow:
    drill: str
    sent: int
    acknowledged: int
    stored: int
    lost: int
    duplicated: int
    seconds: float
    fault: str
    outcome: str = "measured"


#: rows of this session, in the order the drills ran (the conftest prints and writes them)
REPORT: list[DrillRow] = []


def markdown_table(rows: Sequence[DrillRow]) -> str:
    head = (
        "| drill | sent | acknowledged | stored | lost | duplicated | seconds | outcome | fault |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n"
    )
    body = "".join(
        f"| {r.drill} | {r.sent:,} | {r.acknowledged:,} | {r.stored:,} | {r.lost:,} | "
        f"{r.duplicated:,} | {r.seconds:.0f} | {r.outcome} | {r.fault.replace('|', '/')} |\n"
        for r in rows
    )
    return head + body


# --------------------------------------------------------------------------- polling


def wait_for(
    what: str, predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.5
) -> Any:
    """Poll until ``predicate()`` is truthy (returned) or fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # a store still recovering: try again until the deadline
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:g}s waiting for {what}"
                + (f" (last error: {last_error})" if last_error else "")
            )
        time.sleep(interval_s)


# --------------------------------------------------------------------------- sending
#: the seeds the session's drills drew events from: synthetic_events' ids follow the seed,
#: so two drills of one session on the same seed would send the same ids, and the second
#: one's copies would count as duplicates of the first's
_SEEDS: dict[int, str] = {}


def drill_events(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` synthetic events of ``seed``, which no other drill of the session may use
    (an error naming both drills otherwise)."""
    # the test pytest is running (set by pytest itself): "path::name (phase)"
    drill = os.environ.get("PYTEST_CURRENT_TEST", "no test").split(" ")[0]
    other = _SEEDS.setdefault(seed, drill)
    if other != drill:
        raise AssertionError(f"seed {seed} of {drill} is already {other}'s: pick another")
    return synthetic_events(count, seed)


class Sender(threading.Thread):
    """``demo_events.send_events`` in a thread: synthetic events to the gateway's batch
    endpoint at a steady rate, never resent (``retries=0``)."""

    def __init__(
        self, stack: Stack, count: int, seed: int, rate_per_s: float, batch_size: int = 20
    ) -> None:
        super().__init__(name=f"sender-{seed}", daemon=True)
        self.gateway_url = stack.gateway.url
        self.key = stack.gateway.demo_key()
        self.events = drill_events(count, seed)
        self.rate_per_s = rate_per_s
        self.batch_size = batch_size
        self.result: SendResult | None = None
        self.error: BaseException | None = None

    @property
    def ids(self) -> list[str]:
        return [str(e["event_id"]) for e in self.events]

    def run(self) -> None:
        try:
            self.result = send_events(
                self.gateway_url,
                self.key,
                self.events,
                batch_size=self.batch_size,
                rate_per_s=self.rate_per_s,
                retries=0,
                progress=False,
            )
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self, timeout_s: float = 300.0) -> SendResult:
        self.join(timeout_s)
        assert not self.is_alive(), f"the sender did not finish within {timeout_s:g}s"
        if self.error is not None:
            raise AssertionError(f"the sender failed: {self.error!r}") from self.error
        assert self.result is not None
        return self.result


def gateway_metrics(stack: Stack, url: str | None = None) -> dict[str, float]:
    """The gateway's own counters: accepted events, events refused as ``kafka_unavailable``
    and Kafka client errors (summed over their labels); ``url``: another gateway process
    than the stack's (a drill's own)."""
    text = httpx.get((url or stack.gateway.metrics_url) + "/metrics", timeout=5).text
    out = {"accepted": 0.0, "kafka_unavailable": 0.0, "kafka_errors": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "cinepulse_gateway_events_accepted_total":
                out["accepted"] += s.value
            elif (
                s.name == "cinepulse_gateway_events_rejected_total"
                and s.labels.get("reason") == "kafka_unavailable"
            ):
                out["kafka_unavailable"] += s.value
            elif s.name == "cinepulse_gateway_kafka_errors_total":
                out["kafka_errors"] += s.value
    return out


def wait_until_acknowledged(
    stack: Stack, sender: Sender, at_least: int, timeout_s: float, url: str | None = None
) -> None:
    """Block until the gateway (the stack's, or the one at ``url``) has acknowledged
    ``at_least`` more events (its own counter) while ``sender`` still sends: the moment a
    fault lands "in the middle of the send"."""
    base = gateway_metrics(stack, url)["accepted"]
    wait_for(
        f"{at_least} events acknowledged by the gateway",
        lambda: gateway_metrics(stack, url)["accepted"] - base >= at_least,
        timeout_s,
        interval_s=0.2,
    )
    assert sender.is_alive(), "the sender finished before the fault: not mid-send"


# --------------------------------------------------------------------------- the stores


def _settings(stack: Stack) -> tuple[KafkaSettings, PostgresSettings, MongoSettings]:
    return (
        KafkaSettings(bootstrap_servers=stack.kafka.bootstrap),
        PostgresSettings(dsn=SecretStr(stack.postgres.admin_dsn())),
        MongoSettings(url=SecretStr(stack.mongo.url)),
    )


def _chunks(items: Sequence[str], size: int = 5000) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def fact_rows(stack: Stack, ids: Sequence[str], schema: str = "public") -> Counter[str]:
    """Fact rows per event id, the four fact tables of ``schema`` together."""
    counts: Counter[str] = Counter()
    union = " UNION ALL ".join(
        f"SELECT event_id::text FROM {schema}.{t} WHERE event_id = ANY(%(ids)s::uuid[])"
        for t in FACT_TABLES
    )
    with psycopg.connect(stack.postgres.admin_dsn()) as conn:
        for chunk in _chunks(ids):
            counts.update(r[0] for r in conn.execute(union, {"ids": chunk}))
    return counts


def fact_flags(stack: Stack, ids: Sequence[str]) -> Counter[str]:
    """``source_flag`` of the public facts of ``ids``."""
    union = " UNION ALL ".join(
        f"SELECT source_flag FROM {t} WHERE event_id = ANY(%(ids)s::uuid[])" for t in FACT_TABLES
    )
    with psycopg.connect(stack.postgres.admin_dsn()) as conn:
        return Counter(r[0] for r in conn.execute(union, {"ids": list(ids)}))


def _ids_in(stack: Stack, table: str, ids: Sequence[str]) -> set[str]:
    """The ``ids`` that have a row in ``table`` (by ``event_id``)."""
    with psycopg.connect(stack.postgres.admin_dsn()) as conn:
        query = f"SELECT DISTINCT event_id::text FROM {table} WHERE event_id = ANY(%s::uuid[])"
        return {r[0] for r in conn.execute(query, (list(ids),))}


def quarantined(stack: Stack, ids: Sequence[str]) -> set[str]:
    return _ids_in(stack, "quarantine", ids)


def staged(stack: Stack, ids: Sequence[str]) -> set[str]:
    return _ids_in(stack, "stg_user_logs", ids)


def fact_totals(stack: Stack) -> dict[str, int]:
    """Rows of each public fact table (a snapshot to compare)."""
    with psycopg.connect(stack.postgres.admin_dsn()) as conn:
        return {
            t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
            for t in FACT_TABLES
        }


def raw_documents(stack: Stack, ids: Sequence[str]) -> Counter[str]:
    """Raw documents per event id in MongoDB ``raw.user_logs``."""
    _k, _p, mongo = _settings(stack)
    counts: Counter[str] = Counter()
    with make_client(mongo) as client:
        coll = client[mongo.database]["user_logs"]
        for chunk in _chunks(ids, 1000):
            counts.update(
                str(d["event_id"])
                for d in coll.find({"event_id": {"$in": chunk}}, projection={"event_id": 1})
            )
    return counts


def identical_copies(stack: Stack, ids: Sequence[str]) -> int:
    """Raw documents beyond one per event id whose Kafka record is byte for byte the first
    copy's (same topic, key and value: the producer wrote the one message twice, as
    librdkafka's idempotent producer can when it re-sends in-flight messages under a new
    epoch after a local timeout); copies that differ are not counted here."""
    _k, _p, mongo = _settings(stack)
    extra = 0
    with make_client(mongo) as client:
        coll = client[mongo.database]["user_logs"]
        for chunk in _chunks(ids, 1000):
            first: dict[str, tuple[Any, ...]] = {}
            for d in coll.find({"event_id": {"$in": chunk}}).sort("_id", 1):
                same = (d.get("topic"), d.get("key"), d.get("record"))
                seen = first.setdefault(str(d["event_id"]), same)
                if seen is not same and seen == same:
                    extra += 1
    return extra


@dataclass
class Tally:
    sent: int
    acknowledged: int
    archived: int  # acknowledged ids with a raw document
    modelled: int  # acknowledged ids with a fact or a quarantine row
    stored: int  # acknowledged ids in both
    lost: int
    duplicate_facts: int
    duplicate_raw: int
    #: answered 503 (not acknowledged) and stored all the same: allowed
    unacknowledged_stored: int = 0
    lost_examples: list[str] = field(default_factory=list)

    @property
    def duplicated(self) -> int:
        return self.duplicate_facts + self.duplicate_raw

    def detail(self) -> str:
        return (
            f"archived {self.archived:,}/{self.acknowledged:,}, modelled "
            f"{self.modelled:,}/{self.acknowledged:,}; duplicates: facts "
            f"{self.duplicate_facts}, raw {self.duplicate_raw}"
        )


def tally(stack: Stack, sent_ids: Sequence[str], acked_ids: Sequence[str]) -> Tally:
    facts = fact_rows(stack, sent_ids)
    raw = raw_documents(stack, sent_ids)
    held = quarantined(stack, acked_ids)
    acked = set(acked_ids)
    archived = {i for i in acked if raw[i]}
    modelled = {i for i in acked if facts[i] or i in held}
    stored = archived & modelled
    lost = sorted(acked - stored)
    return Tally(
        sent=len(sent_ids),
        acknowledged=len(acked),
        archived=len(archived),
        modelled=len(modelled),
        stored=len(stored),
        lost=len(lost),
        duplicate_facts=sum(n - 1 for n in facts.values() if n > 1),
        duplicate_raw=sum(n - 1 for n in raw.values() if n > 1),
        unacknowledged_stored=sum(1 for i in set(sent_ids) - acked if raw[i] or facts[i]),
        lost_examples=lost[:5],
    )


# --------------------------------------------------------------------------- quiet


def reconcile(stack: Stack, start: datetime, end: datetime, acknowledged: Iterable[str]) -> Any:
    """The project's reconciliation of the Kafka window ``[start, end)`` (a ``Report``)."""
    from cinepulse_quality.__main__ import reconcile as run
    from cinepulse_quality.settings import QualitySettings

    kafka, pg, mongo = _settings(stack)
    settings = QualitySettings(
        kafka=kafka, postgres=pg, mongo=mongo, read_timeout_s=60, group_id="cinepulse-drills"
    )
    return run(settings, start, end, set(acknowledged))


#: the services a drill's pipeline needs (started by the session, restarted when they die)
SERVICES = ("event-gateway", "archiver", "spark-stream")


def supervise(stack: Stack, restarted: list[str]) -> None:
    """Start again any service whose process is gone, as its supervisor does in the cluster
    (a Deployment, the Spark operator's ``restartPolicy: Always``); the names are appended
    to ``restarted`` for the report."""
    for service in (c for c in stack.services if c.name in SERVICES):
        if service.pidfile.exists() and not service.alive():
            restarted.append(service.name)
            stack.up([service.name])


def wait_quiet(
    stack: Stack,
    start: datetime,
    end: datetime,
    acknowledged: Sequence[str],
    restarted: list[str],
    timeout_s: float = 300.0,
) -> Any:
    """Poll the reconciliation of ``[start, end)`` until it finds no drift (every record of
    the window archived and modelled, every acknowledged id a record), or the deadline: then
    the last report is returned as it is and the drill's counts say what is missing. A
    service that died meanwhile is started again (:func:`supervise`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        supervise(stack, restarted)
        try:
            report = reconcile(stack, start, end, acknowledged)
        except Exception:  # a store still coming back
            report = None
        if report is not None and not report.drift:
            return report
        if time.monotonic() > deadline:
            return report
        time.sleep(2.0)


def window(started: datetime, ended: datetime) -> tuple[datetime, datetime]:
    """The Kafka-timestamp window of a send (records are stamped when produced)."""
    return started - timedelta(seconds=2), ended + timedelta(seconds=2)


def now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- Spark


def checkpoint_batches(stack: Stack, query: str = "events") -> tuple[int, int]:
    """(newest planned batch, newest committed batch) of a query's checkpoint: Structured
    Streaming writes ``offsets/N`` before batch N runs and ``commits/N`` after it."""
    root = stack.spark_stream.dir / "checkpoints" / query

    def newest(sub: str) -> int:
        d = root / sub
        names = [p.name for p in d.iterdir()] if d.is_dir() else []
        return max((int(n) for n in names if n.isdigit()), default=-1)

    return newest("offsets"), newest("commits")


def offsets_file(stack: Stack, batch: int, query: str = "events") -> Path:
    return stack.spark_stream.dir / "checkpoints" / query / "offsets" / str(batch)


def commits_file(stack: Stack, batch: int, query: str = "events") -> Path:
    return stack.spark_stream.dir / "checkpoints" / query / "commits" / str(batch)


# --------------------------------------------------------------------------- a drill's row
#: the ``record`` fixture: adds a drill's row to the report
Record = Callable[[DrillRow], None]


def drill_row(
    name: str, t: Tally, started: float, fault: str, duplicated: int | None = None
) -> DrillRow:
    """The report's row of a drill (``duplicated``: when the drill counts it itself)."""
    return DrillRow(
        drill=name,
        sent=t.sent,
        acknowledged=t.acknowledged,
        stored=t.stored,
        lost=t.lost,
        duplicated=t.duplicated if duplicated is None else duplicated,
        seconds=time.monotonic() - started,
        fault=f"{fault}; {t.detail()}",
    )


def restarts_note(restarted: list[str]) -> str:
    """The services the drill's supervisor had to start again, for the fault column."""
    return f"; restarted by the supervisor: {', '.join(restarted)}" if restarted else ""


def assert_clean(t: Tally, report: Any) -> None:
    """Every drill's verdict: nothing acknowledged lost, nothing twice, the reconciliation
    answered without drift."""
    assert t.lost == 0, f"{t.lost} acknowledged events lost, e.g. {t.lost_examples}"
    assert t.duplicate_facts == 0, f"{t.duplicate_facts} duplicate fact rows"
    assert t.duplicate_raw == 0, f"{t.duplicate_raw} duplicate raw documents"
    assert report is not None, "the reconciliation never answered"
    assert not report.drift, report.differences
