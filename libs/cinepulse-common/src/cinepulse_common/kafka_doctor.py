"""Check a live Kafka's topic settings against what Cinepulse's promises need.

The gateway answers 202 only after ``acks=all``; that acknowledgement means "on every
in-sync replica", which is only worth something when the topic has several replicas, a
``min.insync.replicas`` of at least 2, and no unclean leader election. Retention must keep
records long enough for the archiver and the streaming job to catch up after an outage.

For each Cinepulse topic this prints one row per check (OK, WARN or FAIL, and why) and
returns 1 if any check failed. Run it against the Kafka the services use:

    cinepulse-stack doctor                          # the local stack's Kafka
    python -m cinepulse_common.kafka_doctor         # CINEPULSE_KAFKA__* (a service's pod)

The thresholds and their reasons: docs/operations/reliability.md ("Kafka topic settings").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from confluent_kafka.admin import AdminClient, ConfigResource

from cinepulse_common import topics
from cinepulse_common.settings import KafkaSettings

Status = Literal["OK", "WARN", "FAIL"]

#: replicas a topic should have: one broker can fail (or be restarted) with writes going on
#: and nothing acknowledged lost
WANT_REPLICATION = 3
#: acks=all waits for at least this many replicas
WANT_MIN_ISR = 2
HOUR_MS = 3_600_000
#: below this, an outage of a night can delete records the archiver never read: FAIL
MIN_RETENTION_HOURS = 24
#: below this, a weekend outage of the archiver or the streaming job can: WARN
WANT_RETENTION_HOURS = 168

#: topics whose records are keyed by user_id: compaction would delete events
EVENT_LOG_TOPICS = (*topics.USER_EVENT_TOPICS, topics.DEAD_LETTER)

CONFIG_KEYS = (
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
)


@dataclass(frozen=True)
class Finding:
    topic: str
    check: str
    value: str
    status: Status
    reason: str


@dataclass(frozen=True)
class TopicState:
    """What the broker says about one topic: replicas and in-sync replicas per partition,
    and its effective configuration."""

    name: str
    replicas: Sequence[int]  # per partition
    in_sync: Sequence[int]  # per partition
    config: Mapping[str, str]


def _hours(ms: int) -> str:
    return f"{ms / HOUR_MS:g} h"


def evaluate(
    state: TopicState | None,
    name: str,
    *,
    base_name: str | None = None,
    want_replication: int = WANT_REPLICATION,
    min_retention_hours: float = MIN_RETENTION_HOURS,
    want_retention_hours: float = WANT_RETENTION_HOURS,
) -> list[Finding]:
    """The findings for one topic (``state`` None: the topic does not exist)."""
    if state is None:
        return [
            Finding(
                name,
                "exists",
                "no",
                "FAIL",
                "topic missing: create it with the settings below before the services start "
                "(auto-created topics get the broker's defaults)",
            )
        ]
    out: list[Finding] = []

    def add(check: str, value: str, status: Status, reason: str) -> None:
        out.append(Finding(name, check, value, status, reason))

    rf = min(state.replicas) if state.replicas else 0
    if rf >= want_replication:
        add("replication.factor", str(rf), "OK", f">= {want_replication}")
    elif rf == 2:
        add(
            "replication.factor",
            str(rf),
            "WARN",
            "2 replicas: a broker down either stops writes (min.insync.replicas=2) or leaves "
            f"one copy of what is acknowledged; use {want_replication}",
        )
    else:
        add(
            "replication.factor",
            str(rf),
            "FAIL",
            "one copy: losing its broker's disk loses acknowledged events (acks=all "
            f"means nothing); use {want_replication}",
        )

    lagging = sum(1 for r, i in zip(state.replicas, state.in_sync, strict=True) if i < r)
    if lagging:
        add(
            "in-sync replicas",
            f"{lagging} partition(s) under-replicated",
            "WARN",
            "some replicas are behind their leader right now",
        )

    raw = state.config.get("min.insync.replicas", "1")
    min_isr = int(raw)
    if min_isr > rf:
        add(
            "min.insync.replicas",
            raw,
            "FAIL",
            f"more than the {rf} replica(s): every acks=all write is refused "
            "(NOT_ENOUGH_REPLICAS; the gateway answers 503)",
        )
    elif rf < 2:
        add(
            "min.insync.replicas",
            raw,
            "WARN",
            f"meaningless with one replica; use {WANT_MIN_ISR} with {want_replication} replicas",
        )
    elif min_isr < WANT_MIN_ISR:
        add(
            "min.insync.replicas",
            raw,
            "FAIL",
            "acks=all is satisfied by the leader alone: its loss loses acknowledged events; "
            f"use {WANT_MIN_ISR}",
        )
    elif min_isr == rf:
        add(
            "min.insync.replicas",
            raw,
            "WARN",
            f"equal to the replicas: one broker down refuses every write (503s); use {rf - 1}",
        )
    else:
        add("min.insync.replicas", raw, "OK", f"{min_isr} of {rf} replicas acknowledge")

    unclean = state.config.get("unclean.leader.election.enable", "false").lower()
    if unclean == "true":
        add(
            "unclean.leader.election.enable",
            unclean,
            "FAIL",
            "an out-of-sync replica can become leader and drop acknowledged events",
        )
    else:
        add("unclean.leader.election.enable", unclean, "OK", "only in-sync replicas lead")

    policy = state.config.get("cleanup.policy", "delete")
    if "compact" in policy:
        is_log = (base_name or name) in EVENT_LOG_TOPICS
        add(
            "cleanup.policy",
            policy,
            "FAIL" if is_log else "WARN",
            "compaction keeps one record per key and deletes the others before they are "
            "archived or loaded; use delete",
        )
    else:
        add("cleanup.policy", policy, "OK", "records age out by retention only")

    retention_ms = int(state.config.get("retention.ms", str(WANT_RETENTION_HOURS * HOUR_MS)))
    if retention_ms < 0:
        add("retention.ms", "-1 (unlimited)", "OK", "records are never deleted")
    elif retention_ms < min_retention_hours * HOUR_MS:
        add(
            "retention.ms",
            _hours(retention_ms),
            "FAIL",
            f"under {min_retention_hours:g} h: an archiver or Spark outage of a night loses "
            "records never archived; the MongoDB replay cannot restore them",
        )
    elif retention_ms < want_retention_hours * HOUR_MS:
        add(
            "retention.ms",
            _hours(retention_ms),
            "WARN",
            f"under {want_retention_hours:g} h: a weekend outage of the archiver or the "
            "streaming job can outlast it",
        )
    else:
        add("retention.ms", _hours(retention_ms), "OK", f">= {want_retention_hours:g} h")

    retention_bytes = int(state.config.get("retention.bytes", "-1"))
    if retention_bytes >= 0:
        add(
            "retention.bytes",
            str(retention_bytes),
            "WARN",
            "size-based deletion removes records at a burst, however recent; use -1 and "
            "size the disks for retention.ms",
        )
    else:
        add("retention.bytes", "-1", "OK", "only time-based retention")
    return out


def describe(
    admin: AdminClient, names: Iterable[str], timeout_s: float = 10.0
) -> dict[str, TopicState]:
    """The state of each existing topic of ``names`` (missing ones are left out)."""
    md = admin.list_topics(timeout=timeout_s)
    present = [n for n in names if n in md.topics and md.topics[n].error is None]
    if not present:
        return {}
    futures = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, n) for n in present],
        request_timeout=timeout_s,
    )
    configs: dict[str, dict[str, str]] = {}
    for resource, fut in futures.items():
        entries = fut.result(timeout=timeout_s)
        configs[resource.name] = {k: str(entries[k].value) for k in CONFIG_KEYS if k in entries}
    out = {}
    for n in present:
        parts = sorted(md.topics[n].partitions.values(), key=lambda p: p.id)
        out[n] = TopicState(
            n, [len(p.replicas) for p in parts], [len(p.isrs) for p in parts], configs[n]
        )
    return out


def check(
    settings: KafkaSettings,
    names: Iterable[str] = topics.ALL_TOPICS,
    *,
    want_replication: int = WANT_REPLICATION,
    min_retention_hours: float = MIN_RETENTION_HOURS,
    want_retention_hours: float = WANT_RETENTION_HOURS,
    timeout_s: float = 10.0,
) -> list[Finding]:
    """Every finding for the topics ``names`` (without the prefix) of ``settings``."""
    from cinepulse_common.kafka import make_admin

    admin = make_admin(settings)
    full = {settings.topic(n): n for n in names}
    states = describe(admin, full, timeout_s)
    brokers = len(admin.list_topics(timeout=timeout_s).brokers)
    findings: list[Finding] = []
    if brokers < want_replication:
        findings.append(
            Finding(
                "(cluster)",
                "brokers",
                str(brokers),
                "WARN" if brokers > 1 else "FAIL",
                f"fewer than {want_replication} brokers: topics cannot have "
                f"{want_replication} replicas",
            )
        )
    else:
        findings.append(Finding("(cluster)", "brokers", str(brokers), "OK", ""))
    for name, base in full.items():
        findings += evaluate(
            states.get(name),
            name,
            base_name=base,
            want_replication=want_replication,
            min_retention_hours=min_retention_hours,
            want_retention_hours=want_retention_hours,
        )
    return findings


def render(findings: Sequence[Finding]) -> str:
    """The findings as an aligned table, then one summary line."""
    header = ("TOPIC", "CHECK", "VALUE", "STATUS", "REASON")
    rows = [header, *((f.topic, f.check, f.value, f.status, f.reason) for f in findings)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    ]
    counts = {s: sum(1 for f in findings if f.status == s) for s in ("OK", "WARN", "FAIL")}
    lines.append(
        f"{counts['OK']} OK, {counts['WARN']} WARN, {counts['FAIL']} FAIL"
        + (": Kafka's settings break the durability promise" if counts["FAIL"] else "")
    )
    return "\n".join(line.rstrip() for line in lines)


def exit_code(findings: Sequence[Finding]) -> int:
    return 1 if any(f.status == "FAIL" for f in findings) else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", help="host:port[,...] (default: the configured Kafka)")
    parser.add_argument("--topic-prefix", help="prefix of the topic names (default: configured)")
    parser.add_argument(
        "--replication",
        type=int,
        default=WANT_REPLICATION,
        help=f"replicas each topic should have (default {WANT_REPLICATION})",
    )
    parser.add_argument(
        "--min-retention-hours",
        type=float,
        default=MIN_RETENTION_HOURS,
        help=f"FAIL below this retention (default {MIN_RETENTION_HOURS})",
    )
    parser.add_argument(
        "--want-retention-hours",
        type=float,
        default=WANT_RETENTION_HOURS,
        help=f"WARN below this retention (default {WANT_RETENTION_HOURS})",
    )


def run(settings: KafkaSettings, args: argparse.Namespace) -> int:
    """Apply the command-line overrides, check, print the table; the exit code."""
    updates: dict[str, str] = {}
    if args.bootstrap:
        updates["bootstrap_servers"] = args.bootstrap
    if args.topic_prefix is not None:
        updates["topic_prefix"] = args.topic_prefix
    if updates:
        settings = settings.model_copy(update=updates)
    findings = check(
        settings,
        want_replication=args.replication,
        min_retention_hours=args.min_retention_hours,
        want_retention_hours=args.want_retention_hours,
    )
    print(f"Kafka {settings.bootstrap_servers}: Cinepulse topic settings")
    print(render(findings))
    return exit_code(findings)


def main(argv: list[str] | None = None) -> int:
    from pydantic_settings import BaseSettings, SettingsConfigDict

    from cinepulse_common.settings import ENV_PREFIX

    class _Env(BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore"
        )
        kafka: KafkaSettings | None = None

    parser = argparse.ArgumentParser(
        prog="python -m cinepulse_common.kafka_doctor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    kafka = _Env().kafka
    if kafka is None:
        if not args.bootstrap:
            parser.error("set CINEPULSE_KAFKA__BOOTSTRAP_SERVERS or pass --bootstrap")
        kafka = KafkaSettings(bootstrap_servers=args.bootstrap)
    try:
        return run(kafka, args)
    except Exception as exc:  # an unreachable broker: one line, not a traceback
        print(f"kafka doctor: cannot check Kafka: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
