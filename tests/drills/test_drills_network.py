"""Fault drills of issue 21 under Kafka: a faulty network between the gateway and Kafka
(Toxiproxy: delayed, dropped, cut and black-holed connections) and Kafka's log directory on a
filesystem that fills up. As in ``test_drills.py``: events through a real gateway at a steady
rate, the fault in the middle, recovery, then sent / acknowledged / stored / lost /
duplicated. In both: acknowledged-but-lost = 0, duplicates = 0, the fault demonstrably
happened; events answered 503 may land all the same, and are counted."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from cinepulse_devstack import Stack
from tests.drills.conftest import free_ports
from tests.drills.harness import (
    Record,
    Sender,
    assert_clean,
    drill_row,
    gateway_metrics,
    identical_copies,
    now,
    restarts_note,
    supervise,
    tally,
    wait_for,
    wait_quiet,
    wait_until_acknowledged,
    window,
)
from tests.drills.toxiproxy import ProxiedGateway, Toxiproxy

pytestmark = [pytest.mark.drill, pytest.mark.timeout(900)]


# --------------------------------------------------------------------------- the network

PROXY = "kafka"
#: how long each fault is held while events flow
HOLD_S = 10.0
#: a fault's toxics, each (name, type, stream, attributes); None: the proxy is disabled (it
#: closes every connection and refuses new ones)
Toxics = list[tuple[str, str, str, dict[str, int]]] | None
#: the faults in turn
PHASES: list[tuple[str, Toxics]] = [
    # acknowledgements 2-5 s late, up to the gateway's 5 s deadline: slow 202s, and a 503 now
    # and then for an event Kafka wrote all the same (the late landing)
    (
        "delay",
        [
            ("latency_up", "latency", "upstream", {"latency": 500, "jitter": 0}),
            ("latency_down", "latency", "downstream", {"latency": 3000, "jitter": 1500}),
        ],
    ),
    # Kafka's answers are dropped, the connection closed after 5 s of silence: written,
    # never acknowledged
    ("drop", [("drop_answers", "timeout", "downstream", {"timeout": 5000})]),
    ("cut", None),
    # a silent peer: every connection (new ones too) held open, no FIN, no RST, and every
    # byte dropped both ways until the toxics are removed (``timeout`` 0 never closes); what
    # was in flight is lost on the wire, the client finds out by its own timeouts
    (
        "black-hole",
        [
            ("silent_up", "timeout", "upstream", {"timeout": 0}),
            ("silent_down", "timeout", "downstream", {"timeout": 0}),
        ],
    ),
]
#: Kafka client error codes of a connection lost (librdkafka's error callback)
DISCONNECTS = ("_TRANSPORT", "_ALL_BROKERS_DOWN")


def _counters(url: str) -> dict[str, float]:
    """The proxied gateway's counters (``harness.gateway_metrics`` reads the stack's own)."""
    text = httpx.get(url + "/metrics", timeout=5).text
    out = dict.fromkeys(("accepted", "unavailable", "errors", "disconnects", "ack_s", "acks"), 0.0)
    names = {
        "cinepulse_gateway_events_accepted_total": "accepted",
        "cinepulse_gateway_kafka_errors_total": "errors",
        "cinepulse_gateway_produce_latency_seconds_sum": "ack_s",
        "cinepulse_gateway_produce_latency_seconds_count": "acks",
    }
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in names:
                out[names[s.name]] += s.value
                if names[s.name] == "errors" and s.labels.get("code") in DISCONNECTS:
                    out["disconnects"] += s.value
            elif (
                s.name == "cinepulse_gateway_events_rejected_total"
                and s.labels.get("reason") == "kafka_unavailable"
            ):
                out["unavailable"] += s.value
    return out


def _restart_kafka(stack: Stack) -> None:
    """Stop the broker cleanly and start it again (its configuration is written at start)."""
    stack.kafka.stop()
    stack.up(["kafka"])


def _advertised(bootstrap: str) -> list[str]:
    """The broker addresses a client bootstrapping through ``bootstrap`` is given."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return sorted(f"{b.host}:{b.port}" for b in md.brokers.values())


@contextlib.contextmanager
def _kafka_through_proxy(stack: Stack) -> Iterator[tuple[Toxiproxy, ProxiedGateway, str]]:
    """Toxiproxy in front of a broker listener of its own that advertises the proxy, and a
    gateway whose bootstrap is the proxy. Undone whatever happens: the gateway and Toxiproxy
    stopped, the broker restarted with its usual listeners."""
    host = stack.cfg.host
    api, listen, broker, port = free_ports(4)
    toxi = Toxiproxy(stack.cfg.root / "toxiproxy", api)
    gateway = ProxiedGateway(stack, port, f"{host}:{listen}")
    try:
        toxi.start()
        toxi.create_proxy(PROXY, f"{host}:{listen}", f"{host}:{broker}")
        stack.kafka.extra_listeners = {"PROXIED": (broker, f"{host}:{listen}")}
        _restart_kafka(stack)
        gateway.start_and_wait()
        yield toxi, gateway, f"{host}:{listen}"
    finally:
        gateway.stop()
        toxi.stop()
        stack.kafka.extra_listeners = {}
        _restart_kafka(stack)


@dataclass
class Effect:
    """What the gateway counted while one fault was on: from the moment its toxics were
    added (or the proxy disabled) to the moment they were removed, nothing of the previous
    fault's recovery nor of this one's."""

    phase: str
    listed: str  # what Toxiproxy's API listed while it was on
    unavailable: float  # events answered 503 (kafka_unavailable)
    errors: float  # Kafka client errors, every code
    disconnects: float  # of which connections lost (DISCONNECTS)
    acks: float  # events Kafka acknowledged within the deadline
    mean: float  # their mean produce-to-acknowledgement time (0: none)
    late_acks: float  # acknowledged in the second half of the hold
    recovered_s: float = 0.0  # from the removal to 100 acknowledgements again

    def shows(self) -> str | None:
        """None if the gateway saw this fault as it should, else what is missing."""
        if self.phase == "delay":  # acknowledged, late
            ok = self.acks > 0 and self.mean > 1.5
            want = "acknowledgements over 1.5 s on average"
        elif self.phase == "drop":  # written, never acknowledged within the deadline
            ok = self.unavailable > 0
            want = "events answered 503"
        elif self.phase == "cut":  # the connections closed and refused
            ok = self.unavailable > 0 and self.disconnects > 0
            want = "events answered 503 and connections lost (Kafka client errors)"
        elif self.phase == "black-hole":  # nothing through, in either direction
            ok = self.unavailable > 0 and self.late_acks == 0
            want = "events answered 503 and no acknowledgement once in flight ones were due"
        else:
            raise AssertionError(f"no check for the phase {self.phase!r}")
        return None if ok else f"{self.phase}: expected {want}; saw {self.describe()}"

    def describe(self) -> str:
        return (
            f"{self.unavailable:.0f} answered 503, {self.errors:.0f} Kafka errors "
            f"({self.disconnects:.0f} connections lost), {self.acks:.0f} acknowledged "
            f"({self.mean:.1f} s on average, {self.late_acks:.0f} in its second half)"
        )


def _phase(toxi: Toxiproxy, gateway: str, phase: str, toxics: Toxics) -> Effect:
    """Apply one fault, hold it, undo it: what the gateway counted while it was on."""
    before = _counters(gateway)
    if toxics is None:
        toxi.set_enabled(PROXY, False)
        listed = "proxy enabled=" + str(toxi.proxy(PROXY)["enabled"]).lower()
        assert listed.endswith("false"), listed
    else:
        for name, kind, stream, attributes in toxics:
            toxi.add_toxic(PROXY, name, kind, stream, **attributes)
        on = toxi.toxics(PROXY)
        listed = ", ".join(f"{t['type']} {t['stream']}" for t in on)
        assert sorted(t["name"] for t in on) == sorted(t[0] for t in toxics), on
    time.sleep(HOLD_S / 2)
    middle = _counters(gateway)
    time.sleep(HOLD_S / 2)
    held = _counters(gateway)
    if toxics is None:
        toxi.set_enabled(PROXY, True)
    else:
        for name, *_ in toxics:
            toxi.remove_toxic(PROXY, name)
    assert toxi.toxics(PROXY) == [] and toxi.proxy(PROXY)["enabled"], f"{phase} not undone"
    delta = {k: held[k] - before[k] for k in held}
    return Effect(
        phase,
        listed,
        unavailable=delta["unavailable"],
        errors=delta["errors"],
        disconnects=delta["disconnects"],
        acks=delta["acks"],
        mean=delta["ack_s"] / delta["acks"] if delta["acks"] else 0.0,
        late_acks=held["acks"] - middle["acks"],
    )


def test_network_faults_between_gateway_and_kafka(stack: Stack, record: Record) -> None:
    """Delay, drop, cut and black-hole the gateway's connections to Kafka while events flow
    (Toxiproxy), then heal them. The gateway answers 503 for what Kafka did not acknowledge
    within its deadline, 202 only for what it did; some 503s land late, none twice. Each
    fault's evidence is counted while that fault is on, and only then."""
    t0 = time.monotonic()
    with _kafka_through_proxy(stack) as (toxi, gateway, proxy_address):
        advertised = _advertised(proxy_address)
        assert advertised == [proxy_address], f"the proxy is bypassed: brokers {advertised}"
        started, bytes_before = now(), toxi.bytes_through(PROXY)
        # a seed of its own: synthetic_events' ids follow the seed, and a drill of the same
        # session sending the same ids would leave two raw documents of each
        sender = Sender(stack, count=5000, seed=31, rate_per_s=50)
        sender.gateway_url = gateway.url  # this drill's gateway (same write keys)
        sender.start()
        wait_until_acknowledged(stack, sender, 200, timeout_s=60, url=gateway.url)
        effects: list[Effect] = []
        first = _counters(gateway.url)
        for phase, toxics in PHASES:
            effect = _phase(toxi, gateway.url, phase, toxics)
            removed = time.monotonic()
            wait_until_acknowledged(
                stack, sender, 100, timeout_s=120, url=gateway.url
            )  # healed: acknowledged again
            effect.recovered_s = time.monotonic() - removed
            effects.append(effect)
        result = sender.finish()
        last = _counters(gateway.url)
        carried = toxi.bytes_through(PROXY) - bytes_before
        restarted: list[str] = []
        report = wait_quiet(stack, *window(started, now()), result.accepted_ids, restarted)
        t = tally(stack, sender.ids, result.accepted_ids)
        # the producer's own second writes of one message (identical records): the archive
        # keeps one document per Kafka record, the warehouse one fact per event
        redelivered = identical_copies(stack, sender.ids) if t.duplicate_raw else 0
    errors = last["errors"] - first["errors"]
    faults = "; ".join(
        f"{e.phase} [{e.listed}] for {HOLD_S:.0f} s: {e.describe()}; 100 acknowledged again "
        f"{e.recovered_s:.0f} s after its removal"
        for e in effects
    )
    record(
        drill_row(
            "network faults between the gateway and Kafka (Toxiproxy)",
            t,
            t0,
            f"the gateway's producer through a proxy the broker advertises ({advertised[0]}, "
            f"{carried / 1e6:.1f} MB carried); {faults}; {result.unavailable} events answered "
            f"503 (not acknowledged; {t.unacknowledged_stored} of them landed anyway), "
            f"{errors:.0f} Kafka client errors; {redelivered} records written twice to Kafka "
            "by the producer itself (identical copies: two raw documents, one fact)"
            + restarts_note(restarted),
            duplicated=t.duplicate_facts + t.duplicate_raw - redelivered,
        )
    )
    assert carried > 0, "no byte went through the proxy"
    for effect in effects:
        missing = effect.shows()
        assert missing is None, missing
    assert result.unavailable > 0, "no event was refused: the faults did not show"
    assert t.unacknowledged_stored <= result.unavailable
    # a producer re-send follows a failed delivery: never more copies than client errors
    assert redelivered <= errors, f"{redelivered} identical copies for {errors:.0f} errors"
    assert t.lost == 0, f"{t.lost} acknowledged events lost, e.g. {t.lost_examples}"
    assert t.duplicate_facts == 0, f"{t.duplicate_facts} duplicate fact rows"
    assert t.duplicate_raw == redelivered, (
        f"{t.duplicate_raw - redelivered} raw documents beyond the producer's identical copies"
    )
    assert report is not None and not report.drift, report and report.differences


# --------------------------------------------------------------------------- the disk

MiB = 1 << 20
#: room on the tmpfs for the drill's own appends before the filler takes the rest. Kafka does
#: not preallocate its segments (``log.preallocate`` is false; ``log.segment.bytes``, 64 MiB,
#: is where a segment rolls, not a reservation) and its 10 MiB index files are sparse (on a
#: tmpfs only the pages written count): a few MiB are used, 64 leave ample room.
HEADROOM = 64 * MiB
FILLER = "drill-filler"


def _allocated(folder: Path) -> int:
    """Bytes the files under ``folder`` take on disk (sparse files count what they hold)."""
    return sum(p.lstat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def _sh(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr}"


def _umount(path: Path) -> None:
    """Unmount, retrying while busy; a lazy unmount as the last resort (never left behind)."""
    for _ in range(20):
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.5)
    _sh("umount", "-l", str(path))


@contextlib.contextmanager
def _kafka_on_tmpfs(stack: Stack) -> Iterator[Path]:
    """The broker restarted with its log directory (topics and KRaft metadata) copied onto a
    tmpfs of its own: the data used plus :data:`HEADROOM`. Whatever happens, the broker is
    stopped, the tmpfs unmounted and the broker started again on disk: on what it wrote
    there (copied back) once the tmpfs held a whole copy, else on the untouched original."""
    assert os.geteuid() == 0, "this drill mounts a tmpfs: run it as root"
    kafka = stack.kafka
    data, disk, back = (kafka.dir / n for n in ("data", "data.disk", "data.back"))
    kafka.stop()  # cleanly: its files are whole and its indexes trimmed
    size = (_allocated(data) + HEADROOM + MiB - 1) // MiB * MiB
    data.rename(disk)
    data.mkdir()
    # populated: the tmpfs holds a whole copy of the original (the broker may have run on
    # it); copied: what the broker left there is whole on disk again. The original on disk
    # is replaced (and deleted) only when both hold: a copy onto the tmpfs that failed part
    # way (ENOSPC: the size estimate too low) leaves it untouched, the only whole copy.
    mounted = populated = copied = False
    try:
        _sh("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "cinepulse-drill", str(data))
        mounted = True
        _sh("cp", "-a", f"{disk}/.", str(data))
        populated = True
        stack.up(["kafka"])
        yield data
    finally:
        kafka.stop()
        if mounted and populated:
            (data / FILLER).unlink(missing_ok=True)
            with contextlib.suppress(AssertionError, OSError):
                shutil.rmtree(back, ignore_errors=True)
                back.mkdir()
                _sh("cp", "-a", f"{data}/.", str(back))
                copied = True
        if mounted:
            _umount(data)
        data.rmdir()
        if populated and copied:
            back.rename(data)
            shutil.rmtree(disk)
        else:  # the tmpfs never held a whole copy, or the copy back failed: the original
            shutil.rmtree(back, ignore_errors=True)
            disk.rename(data)
        stack.up(["kafka"])


def _fill(path: Path) -> int:
    """Write to ``path`` until its filesystem is full (ENOSPC); the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for size in (MiB, 4096, 1):
            chunk = b"\xa5" * size
            try:
                while True:
                    written += f.write(chunk) or 0
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return written


def test_kafka_log_dir_full_then_freed(stack: Stack, record: Record) -> None:
    """Kafka's log directory on a small tmpfs fills up while events flow: the broker cannot
    append, and the gateway answers 503 (never 202) for what it cannot acknowledge. The
    space is freed and the broker restarted as an operator would (a broker whose only log
    directory failed stops); nothing acknowledged is lost, nothing stored twice."""
    t0 = time.monotonic()
    with _kafka_on_tmpfs(stack) as logdir:
        started, before = now(), gateway_metrics(stack)
        sender = Sender(stack, count=2500, seed=32, rate_per_s=50)  # a seed of its own
        sender.start()
        wait_until_acknowledged(stack, sender, 300, timeout_s=90)
        log_from, pid = stack.kafka.log_path.stat().st_size, stack.kafka.pid()
        filled = _fill(logdir / FILLER)
        acked_at_fill = gateway_metrics(stack)["accepted"]
        free = shutil.disk_usage(logdir).free
        full_at = time.monotonic()

        def broker_log() -> str:
            with open(stack.kafka.log_path, errors="replace") as f:
                f.seek(log_from)
                return f.read()

        wait_for(
            "the gateway refusing events Kafka cannot append",
            lambda: gateway_metrics(stack)["kafka_unavailable"] > before["kafka_unavailable"],
            timeout_s=60,
        )
        wait_for("the broker to log the full disk", lambda: "No space left" in broker_log(), 60)
        time.sleep(5)  # the disk stays full a little longer: more events answered 503
        text = broker_log()
        enospc = text.count("No space left on device")
        offline = "Stopping serving logs in dir" in text or "have failed" in text
        halted = not stack.kafka.alive()
        # acknowledged while full: only what fitted in the last pages of the broker's files
        acked_full = gateway_metrics(stack)["accepted"] - acked_at_fill
        (logdir / FILLER).unlink()
        full_s = time.monotonic() - full_at
        if halted or offline:  # the operator's restart, once the space is back
            stack.kafka.stop()
            stack.up(["kafka"])
        wait_until_acknowledged(stack, sender, 100, timeout_s=120)
        broker = stack.kafka.pid()
        restarted: list[str] = []
        supervise(stack, restarted)
        result = sender.finish()
        after = gateway_metrics(stack)
        report = wait_quiet(stack, *window(started, now()), result.accepted_ids, restarted)
        t = tally(stack, sender.ids, result.accepted_ids)
    record(
        drill_row(
            "Kafka's log directory full, then freed",
            t,
            t0,
            f"log dir on a tmpfs, filled with {filled / MiB:.0f} MiB after 300 acks ({free} "
            f"bytes left) for {full_s:.0f} s, {acked_full:.0f} events acknowledged meanwhile; "
            f"broker pid {pid}: {enospc} 'No space left on "
            f"device' in its log, log dir "
            + ("offline" if offline else "NOT marked offline")
            + (", halted" if halted else ", still running")
            + ("; freed, broker restarted" if halted or offline else "; freed")
            + f" (pid {broker}); {result.unavailable} events "
            f"answered 503 (not acknowledged; {t.unacknowledged_stored} of them landed "
            f"anyway), {after['kafka_errors'] - before['kafka_errors']:.0f} Kafka client "
            "errors in the gateway" + restarts_note(restarted),
        )
    )
    assert free < 64 * 1024, f"{free} bytes still free: the filesystem was not full"
    assert enospc > 0 or offline, "the broker never failed to append"
    assert result.unavailable > 0, "no event was refused while the disk was full"
    assert_clean(t, report)
