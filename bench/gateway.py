"""Event gateway throughput against the real local Kafka, next to its two ceilings, in one run.

* (a) HTTP ceiling: :data:`bare_app`, a FastAPI app whose ``POST /api/events`` only parses
  the JSON body and answers 202 - the same uvicorn (uvloop, httptools) as the gateway, no
  Kafka. The gateway's single-event path is compared with it (c/a).
* (b) Kafka ceiling: the raw confluent-kafka producer (``make_producer``, acks=all,
  idempotent, the gateway's overrides) sending the records the gateway would write, in its
  own process. The gateway's batch path is compared with it (d/b).
* (c) the gateway, one event per request (``POST /api/events``);
* (d) the gateway, 100 events per request (``POST /api/events/batch``).

HTTP load comes from ``hey`` (a Go binary, its own process); its CPU time is measured next
to the server's so the table says whether the generator was the bottleneck. Every topic
lives under a prefix unique to the run and is deleted at the end.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import re
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from fastapi import FastAPI, Request
from starlette.responses import Response

from bench.report import Table
from cinepulse_common import topics
from cinepulse_common.kafka import delete_topics, ensure_topics, make_admin, make_consumer
from cinepulse_common.settings import KafkaSettings
from cinepulse_devstack import Stack, StackError
from cinepulse_devstack.config import repo_root
from cinepulse_devstack.procs import run as run_step
from cinepulse_devstack.procs import tail

HEY_VERSION = "v0.1.4"
ROUNDS = 3  # trials per path; the median is reported
WARMUP_S = 2
TRIAL_S = 8
SINGLE_CONCURRENCY = 64
BATCH_CONCURRENCY = 8
BATCH_SIZE = 100
KAFKA_MESSAGES = 100_000
PARTITIONS = 3
#: targets from the gateway's design (reported, not enforced)
TARGET_SINGLE = 0.7
TARGET_BATCH = 0.5
TARGET_P99_MS = 50.0
#: the steady-load trial: events/s the gateway is offered, spread over this many clients
STEADY_RATE = 1000
STEADY_CONCURRENCY = 16

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# --------------------------------------------------------------------------- (a) HTTP ceiling

bare_app = FastAPI()
_BARE_ANSWER = b'{"status":"accepted"}'


@bare_app.post("/api/events")
async def _bare_post(request: Request) -> Response:
    json.loads(await request.body())
    return Response(_BARE_ANSWER, status_code=202, media_type="application/json")


# --------------------------------------------------------------------------- request bodies


def rate_event(user_id: str, occurred_at: datetime) -> dict[str, Any]:
    """A valid rate event as a frontend sends it: no event_id, the gateway assigns one."""
    return {
        "event_type": "rate",
        "user_id": user_id,
        "movie_id": 603,
        "occurred_at": occurred_at.isoformat(),
        "payload": {"rating": 4.5},
    }


def batch_events(occurred_at: datetime) -> list[dict[str, Any]]:
    # distinct users, so the records spread over the partitions as real traffic does
    return [rate_event(f"u-{i}", occurred_at) for i in range(BATCH_SIZE)]


# --------------------------------------------------------------------------- (b) Kafka ceiling


def gateway_records(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """(key, value) exactly as the gateway serializes them (``Gateway.record``)."""
    from cinepulse_common.events import EVENT_ADAPTER
    from cinepulse_common.rules import active_rules

    context = {"rules": active_rules()}
    now = datetime.now(UTC)
    out = []
    for e in events:
        event = EVENT_ADAPTER.validate_python(e, context=context)
        event = event.model_copy(update={"received_at": now})
        out.append((event.kafka_key(), EVENT_ADAPTER.dump_json(event)))
    return out


def producer_overrides() -> dict[str, Any]:
    """The gateway's producer settings on top of ``make_producer`` (see KafkaPublisher)."""
    from cinepulse_event_gateway.settings import LimitSettings

    limits = LimitSettings()
    return {
        "queue.buffering.max.messages": limits.max_in_flight_messages,
        "delivery.timeout.ms": int(max(limits.produce_timeout_s * 2, 10.0) * 1000),
        "socket.keepalive.enable": True,
        "reconnect.backoff.max.ms": 1000,
    }


def _kafka_ceiling(
    conn: Connection, bootstrap: str, topic: str, events: list[dict[str, Any]], n: int
) -> None:
    """Child process: produce ``n`` records as fast as the queue allows; send back figures."""
    try:
        from cinepulse_common.kafka import make_producer

        templates = gateway_records(events)
        # fresh event_id per record (the gateway assigns one per event), built before timing
        values = []
        for i in range(n):
            key, value = templates[i % len(templates)]
            old = json.loads(value)["event_id"].encode()
            values.append((key, value.replace(old, str(uuid.uuid4()).encode())))
        producer = make_producer(KafkaSettings(bootstrap_servers=bootstrap), **producer_overrides())
        _wait_metadata(producer, topic)  # connected, partition leaders known: then the clock
        latencies: list[float] = []
        failed: list[str] = []

        def delivered(t0: float) -> Callable[[KafkaError | None, Message], None]:
            def cb(err: KafkaError | None, _msg: Message) -> None:
                if err is None:
                    latencies.append(time.perf_counter() - t0)
                else:
                    failed.append(err.name())

            return cb

        cpu0 = _self_cpu()
        start = time.perf_counter()
        for key, value in values:
            while True:
                try:
                    producer.produce(
                        topic, value=value, key=key, on_delivery=delivered(time.perf_counter())
                    )
                    break
                except BufferError:  # queue full: let librdkafka drain it
                    producer.poll(0.01)
            producer.poll(0)  # run the delivery callbacks that are due
        left = producer.flush(60)
        elapsed = time.perf_counter() - start
        conn.send(
            {
                "elapsed": elapsed,
                "acked": len(latencies),
                "failed": len(failed) + left,
                "errors": sorted(set(failed)),
                "p50": _quantile(latencies, 0.50),
                "p99": _quantile(latencies, 0.99),
                "cores": (_self_cpu() - cpu0) / elapsed,
            }
        )
    except Exception as exc:  # report it to the parent rather than die silently
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def _wait_metadata(producer: Any, topic: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            producer.list_topics(topic, timeout=5)
            return
        except KafkaException:  # e.g. the broker is restarting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)  # every thread, librdkafka's included
    return ru.ru_utime + ru.ru_stime


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def kafka_trial(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> Trial:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_kafka_ceiling,
        args=(child, bootstrap, topic, events, KAFKA_MESSAGES),
        name="bench-kafka-ceiling",
    )
    proc.start()
    child.close()
    try:
        if not parent.poll(90):
            raise RuntimeError("the Kafka ceiling producer did not finish within 90s")
        res = parent.recv()
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    if "error" in res:
        raise RuntimeError(f"Kafka ceiling producer failed: {res['error']}")
    return Trial(
        events_s=res["acked"] / res["elapsed"],
        p50_ms=res["p50"] * 1000,
        p99_ms=res["p99"] * 1000,
        ok=res["acked"],
        failures={f"not acknowledged ({', '.join(res['errors'])})": res["failed"]}
        if res["failed"]
        else {},
        server_cores=res["cores"],  # the producer process is the "server" here
    )


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) used so far by a running process; NaN when
    it is gone (a broker restarted under the benchmark shows up as NaN, not a crash)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def machine_busy_cpu() -> float:
    """CPU seconds every core spent busy since boot (``/proc/stat``): everything running."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait; guest time is already counted in user
    return (sum(ticks[:8]) - idle) / CLOCK_TICKS


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path


@contextlib.contextmanager
def serve(
    name: str, cmd: list[str], port: int, env: dict[str, str], logdir: Path
) -> Iterator[Server]:
    """Run a server process for the duration of the block; always stopped at the end."""
    log = logdir / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=repo_root(),
        )
    try:
        yield Server(name, proc, f"http://127.0.0.1:{port}", log)
    finally:
        proc.terminate()
        try:
            proc.wait(25)  # the gateway flushes its producer on the way out
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(  # noqa: S310 - a local http URL
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(server: Server, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """Until the server answers ``path`` with 202 (a check of the body too); its answer."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited at start-up:\n{tail(server.log)}")
        try:
            status, answer = post(server.url + path, body, headers)
        except (ConnectionError, urllib.error.URLError):
            time.sleep(0.2)
            continue
        if status != 202:
            raise RuntimeError(f"{server.name} answered {status} to {path}: {answer[:500]!r}")
        return answer
    raise RuntimeError(f"{server.name} did not answer within 60s:\n{tail(server.log)}")


# --------------------------------------------------------------------------- hey


def hey_binary(stack: Stack) -> str:
    """``hey`` from the project cache, built with ``go install`` the first time."""
    gobin = stack.cfg.cache / "bin"
    hey = gobin / "hey"
    if not hey.exists():
        go = shutil.which("go") or "/usr/local/go/bin/go"
        if not Path(go).exists():
            raise StackError("go not found (needed once to build hey): install Go 1.21+")
        gobin.mkdir(parents=True, exist_ok=True)
        run_step(
            [go, "install", f"github.com/rakyll/hey@{HEY_VERSION}"],
            what=f"go install github.com/rakyll/hey@{HEY_VERSION}",
            env=os.environ | {"GOBIN": str(gobin)},
        )
    return str(hey)


@dataclass
class Trial:
    events_s: float
    p50_ms: float
    p99_ms: float
    ok: int  # events acknowledged (202s x events per request, or producer acks)
    failures: dict[str, int] = field(default_factory=dict)  # non-202 statuses and errors
    client_cores: float = 0.0  # the load generator's CPU, in cores
    server_cores: float = 0.0
    broker_cores: float = 0.0
    other_cores: float = 0.0  # the rest of the machine during the trial


_STATUS = re.compile(r"^\s*\[(\d{3})\]\s+(\d+) responses", re.M)
_ERROR = re.compile(r"^\s*\[(\d+)\]\s+(.+)$", re.M)


def parse_hey(out: str, per_request: int) -> Trial:
    """Requests/sec, p50/p99 and status codes from hey's text summary."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s*50% in ([\d.]+) secs", out, re.M)
    p99 = re.search(r"^\s*99% in ([\d.]+) secs", out, re.M)
    if not (rps and p50 and p99):
        raise RuntimeError(f"cannot parse hey's output:\n{out}")
    codes = {int(c): int(n) for c, n in _STATUS.findall(out)}
    failures = {f"HTTP {c}": n for c, n in codes.items() if c != 202}
    if "Error distribution:" in out:
        errors = out.split("Error distribution:", 1)[1]
        failures |= {msg.strip()[:120]: int(n) for n, msg in _ERROR.findall(errors)}
    return Trial(
        events_s=float(rps[1]) * per_request,
        p50_ms=float(p50[1]) * 1000,
        p99_ms=float(p99[1]) * 1000,
        ok=codes.get(202, 0) * per_request,
        failures=failures,
    )


def hey(
    binary: str,
    server: Server,
    path: str,
    body_file: Path,
    headers: dict[str, str],
    *,
    seconds: int,
    concurrency: int,
    per_request: int,
    broker_pid: int | None,
    qps: float | None = None,
) -> Trial:
    """One hey run; the generator's, the server's and the broker's CPU measured around it.
    ``qps``: requests per second *per worker* (a steady load below saturation)."""
    cmd = [binary, "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST"]
    if qps is not None:
        cmd += ["-q", f"{qps:g}"]
    cmd += ["-T", "application/json", "-D", str(body_file)]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(server.url + path)
    server_cpu0, broker_cpu0 = proc_cpu(server.proc.pid), proc_cpu(broker_pid)
    busy0 = machine_busy_cpu()
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            # wait4 hands back the child's own resource usage (RUSAGE_CHILDREN would mix in
            # every other child reaped meanwhile)
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # interrupted: do not leave hey running
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"hey exited {proc.returncode}:\n{text}")
    trial = parse_hey(text, per_request)
    trial.client_cores = (usage.ru_utime + usage.ru_stime) / wall
    trial.server_cores = (proc_cpu(server.proc.pid) - server_cpu0) / wall
    trial.broker_cores = (proc_cpu(broker_pid) - broker_cpu0) / wall
    busy = (machine_busy_cpu() - busy0) / wall
    # whatever else ran meanwhile (other test runs, services)
    measured = (trial.client_cores, trial.server_cores, trial.broker_cores)
    trial.other_cores = busy - sum(c for c in measured if not math.isnan(c))
    return trial


# --------------------------------------------------------------------------- Kafka offsets


def topic_records(settings: KafkaSettings, topic: str) -> int:
    """Records in ``topic``: the sum of its partitions' high watermarks (it starts empty)."""
    consumer = make_consumer(settings, group_id=f"bench-watermarks-{uuid.uuid4().hex}")
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        )
    finally:
        consumer.close()


# --------------------------------------------------------------------------- the benchmark


def _median(trials: list[Trial], attr: str) -> float:
    return statistics.median(getattr(t, attr) for t in trials)


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any CINEPULSE_* variable (no stray rate limit or
    key path reaches the servers), plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CINEPULSE_")} | extra


@dataclass
class Load:
    """Runs hey against a server; for the gateway, also checks Kafka got every 202."""

    hey: str
    headers: dict[str, str]
    kafka: KafkaSettings
    topic: str
    broker_pid: int | None
    acked_events: int = 0  # events hey saw answered 202 by the gateway (warm-ups included)
    topic_growth: int = 0  # records the topic gained over those same runs

    def __call__(
        self,
        server: Server,
        path: str,
        body: Path,
        concurrency: int,
        per_request: int,
        *,
        kafka_checked: bool,
        qps: float | None = None,
    ) -> Trial:
        before = topic_records(self.kafka, self.topic) if kafka_checked else 0
        warm, trial = (
            hey(
                self.hey,
                server,
                path,
                body,
                self.headers,
                seconds=seconds,
                concurrency=concurrency,
                per_request=per_request,
                broker_pid=self.broker_pid,
                qps=qps,
            )
            for seconds in (WARMUP_S, TRIAL_S)
        )
        if kafka_checked:
            self.acked_events += warm.ok + trial.ok
            self.topic_growth += topic_records(self.kafka, self.topic) - before
        # a failed answer in the warm-up counts too
        trial.failures = {
            k: warm.failures.get(k, 0) + trial.failures.get(k, 0)
            for k in warm.failures | trial.failures
        }
        return trial


def run(stack: Stack) -> Table:
    prefix = f"bench-{secrets.token_hex(4)}-"
    kafka = KafkaSettings(bootstrap_servers=stack.kafka.bootstrap, topic_prefix=prefix)
    user_topics = [kafka.topic(t) for t in topics.USER_EVENT_TOPICS]
    rating_topic = kafka.topic(topics.USER_RATING_LOG)
    key = secrets.token_urlsafe(24)
    broker_pid = stack.kafka.pid()
    load = Load(hey_binary(stack), {"X-Write-Key": key}, kafka, rating_topic, broker_pid)

    now = datetime.now(UTC)  # occurred_at: the rules allow 300 s of future skew, years past
    single = json.dumps(rate_event("u-1042", now)).encode()
    batch_list = batch_events(now)
    batch = json.dumps(batch_list).encode()
    env = _clean_env(
        stack.env()
        | {
            "CINEPULSE_KAFKA__TOPIC_PREFIX": prefix,
            "CINEPULSE_AUTH__KEYS": json.dumps({"bench": key}),
            "CINEPULSE_LOG_LEVEL": "WARNING",
        }
    )
    bare_port, gw_port = free_port(), free_port()
    bare_cmd = [sys.executable, "-m", "uvicorn", "bench.gateway:bare_app", "--loop", "uvloop"]
    bare_cmd += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    bare_cmd += ["--host", "127.0.0.1", "--port", str(bare_port)]
    gw_cmd = [sys.executable, "-m", "cinepulse_event_gateway"]
    gw_cmd += ["--host", "127.0.0.1", "--port", str(gw_port)]

    trials: dict[str, list[Trial]] = {"a": [], "b": [], "c": [], "d": [], "s": []}
    admin = make_admin(kafka)
    ensure_topics(admin, user_topics, partitions=PARTITIONS)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
            workdir = Path(tmp)
            single_file, batch_file = workdir / "single.json", workdir / "batch.json"
            single_file.write_bytes(single)
            batch_file.write_bytes(batch)
            try:
                with (
                    serve("bare", bare_cmd, bare_port, env, workdir) as bare,
                    serve("gateway", gw_cmd, gw_port, env, workdir) as gateway,
                ):
                    # up, and every body is valid (202; each batch event accepted)
                    wait_ready(bare, "/api/events", single, load.headers)
                    wait_ready(gateway, "/api/events", single, load.headers)
                    answer = wait_ready(gateway, "/api/events/batch", batch, load.headers)
                    assert json.loads(answer)["accepted"] == BATCH_SIZE, answer
                    load.acked_events = 1 + BATCH_SIZE
                    load.topic_growth = topic_records(kafka, rating_topic)

                    # interleaved, so drift (other load, GC, caches) hits every path alike
                    for _ in range(ROUNDS):
                        trials["a"].append(
                            load(
                                bare,
                                "/api/events",
                                single_file,
                                SINGLE_CONCURRENCY,
                                1,
                                kafka_checked=False,
                            )
                        )
                        trials["c"].append(
                            load(
                                gateway,
                                "/api/events",
                                single_file,
                                SINGLE_CONCURRENCY,
                                1,
                                kafka_checked=True,
                            )
                        )
                        trials["d"].append(
                            load(
                                gateway,
                                "/api/events/batch",
                                batch_file,
                                BATCH_CONCURRENCY,
                                BATCH_SIZE,
                                kafka_checked=True,
                            )
                        )
                        trials["b"].append(
                            kafka_trial(kafka.bootstrap_servers, rating_topic, batch_list)
                        )
                    # latency at a steady load below saturation (what a sized deployment
                    # sees), next to the saturated figures above
                    trials["s"].append(
                        load(
                            gateway,
                            "/api/events",
                            single_file,
                            STEADY_CONCURRENCY,
                            1,
                            kafka_checked=True,
                            qps=STEADY_RATE / STEADY_CONCURRENCY,
                        )
                    )
            finally:
                gateway_log = (workdir / "gateway.log").read_text(errors="replace")
    finally:
        delete_topics(admin, user_topics)

    table = _table(trials, load.acked_events, load.topic_growth, gateway_log)
    if stack.kafka.pid() != broker_pid:
        table.notes.append(
            f"WARNING: the Kafka broker was restarted during the run (pid {broker_pid} -> "
            f"{stack.kafka.pid()}): some figures are not representative"
        )
    return table


def _table(
    trials: dict[str, list[Trial]], acked_events: int, topic_growth: int, gateway_log: str
) -> Table:
    table = Table(
        f"Event gateway into Kafka (median of {ROUNDS}; hey {TRIAL_S}s trials after "
        f"{WARMUP_S}s warm-up, {os.cpu_count()} cores shared by everything)",
        ["path", "events/s", "p50 ms", "p99 ms", "vs ceiling", "events/s per server core"],
    )
    names = {
        "a": f"(a) HTTP ceiling: bare FastAPI, 1 event/request, c={SINGLE_CONCURRENCY}",
        "c": f"(c) gateway POST /api/events, 1 event/request, c={SINGLE_CONCURRENCY}",
        "b": f"(b) Kafka ceiling: raw producer, {KAFKA_MESSAGES:,} records",
        "d": f"(d) gateway POST /api/events/batch, {BATCH_SIZE} events/request, "
        f"c={BATCH_CONCURRENCY}",
        "s": f"(c') gateway POST /api/events at a steady {STEADY_RATE:,} events/s, "
        f"c={STEADY_CONCURRENCY}",
    }
    rate = {k: _median(ts, "events_s") for k, ts in trials.items()}
    ceiling = {"a": "a", "c": "a", "b": "b", "d": "b"}
    ceiling["s"] = "a"
    for k in ("a", "c", "b", "d", "s"):
        table.add(
            names[k],
            f"{rate[k]:,.0f}",
            f"{_median(trials[k], 'p50_ms'):.1f}",
            f"{_median(trials[k], 'p99_ms'):.1f}",
            f"{rate[k] / rate[ceiling[k]]:.2f}",
            f"{statistics.median(t.events_s / t.server_cores for t in trials[k]):,.0f}",
        )
    c_a, d_b = rate["c"] / rate["a"], rate["d"] / rate["b"]
    p99s = {k: _median(trials[k], "p99_ms") for k in ("c", "d", "s")}

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    table.notes.append(
        f"targets: c/a = {c_a:.2f} (>= {TARGET_SINGLE}: {verdict(c_a >= TARGET_SINGLE)}), "
        f"d/b = {d_b:.2f} (>= {TARGET_BATCH}: {verdict(d_b >= TARGET_BATCH)}), "
        f"gateway p99 at a steady {STEADY_RATE:,} events/s = {p99s['s']:.1f} ms "
        f"(< {TARGET_P99_MS:g} ms: {verdict(p99s['s'] < TARGET_P99_MS)}); saturated: "
        f"{p99s['c']:.1f} ms single, {p99s['d']:.1f} ms per batch of {BATCH_SIZE}"
    )
    for k in ("a", "c", "d"):
        ts = trials[k]
        table.notes.append(
            f"CPU ({k}, cores, medians): hey {_median(ts, 'client_cores'):.2f} while the "
            f"server used {_median(ts, 'server_cores'):.2f}, the Kafka broker "
            f"{_median(ts, 'broker_cores'):.2f} and the rest of the machine "
            f"{_median(ts, 'other_cores'):.2f}"
        )
    table.notes.append(
        f"CPU (b): the producer process used {_median(trials['b'], 'server_cores'):.2f} "
        "cores; its latency is produce() to delivery callback while producing flat out "
        "(librdkafka's linger.ms=5 batching and queueing included)"
    )
    per_core = {
        k: statistics.median(t.events_s / t.server_cores for t in ts) for k, ts in trials.items()
    }
    table.notes.append(
        "events/s per server core (the server's own CPU time) is the figure least disturbed "
        f"by whatever else runs on the machine; per core, c/a = {per_core['c'] / per_core['a']:.2f}"
        f" and d/b = {per_core['d'] / per_core['b']:.2f}"
    )
    busiest = max(t.other_cores for k in ("a", "c", "d") for t in trials[k])
    if busiest > 0.25:
        table.notes.append(
            f"the machine was not quiet: other processes used up to {busiest:.2f} of its "
            f"{os.cpu_count()} cores during a trial; absolute rates are lower than on an idle "
            "machine, compare the per-core figures"
        )
    table.notes.append(
        "(a) and (c) send one body over and over (one user_id: one partition); the batch "
        f"holds {BATCH_SIZE} users (all {PARTITIONS} partitions); (b) sends the batch's "
        "records, as the gateway serializes them, with a fresh event_id each"
    )
    failures: dict[str, int] = {}
    for k, ts in trials.items():
        for t in ts:
            for what, n in t.failures.items():
                failures[f"({k}) {what}"] = failures.get(f"({k}) {what}", 0) + n
    if failures:
        table.notes.append(
            "FAILED answers: " + "; ".join(f"{w}: {n:,}" for w, n in sorted(failures.items()))
        )
    else:
        table.notes.append("every HTTP answer was 202; every producer record was acknowledged")
    ok = topic_growth >= acked_events
    table.notes.append(
        f"correctness: the prefixed user_rating_log grew by {topic_growth:,} records over the "
        f"gateway runs, for {acked_events:,} events answered 202 "
        f"({'OK' if ok else 'FAILED: records missing'})"
    )
    warnings = [line for line in gateway_log.splitlines() if line.strip()]
    if warnings:
        table.notes.append(f"the gateway logged {len(warnings)} line(s) at WARNING or above")
    return table
