"""What the HTTP benchmarks share: server processes, the ``hey`` load generator (a Go binary,
its own process) and the CPU accounting around each run (the generator's, the server's, a
broker's and the rest of the machine's), so a table can say what the bottleneck was."""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import Figure, Target
from cinepulse_devstack import Stack, StackError
from cinepulse_devstack.config import repo_root
from cinepulse_devstack.procs import run as run_step

HEY_VERSION = "v0.1.4"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

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


#: hey prints its p-th percentile only once a run has 100 / (100 - p) answers (the 99th from
#: 100 on; below that it leaves the line out), so a trial after a warm-up is sized to get at
#: least this many at the warm-up's rate (:func:`trial_seconds`)
MIN_REQUESTS = 300
#: ... but is never stretched beyond this; a trial still short of a percentile is reported
#: as short (:func:`trial_notes`), not fatal
MAX_TRIAL_S = 60
PERCENTILES = (50, 99)


@dataclass
class Trial:
    events_s: float  # per second: requests x events per request
    p50_ms: float  # NaN: the trial was too short for hey to print it (see ``short``)
    p99_ms: float
    ok: int  # events acknowledged (202s x events per request, or producer acks)
    failures: dict[str, int] = field(default_factory=dict)  # non-202 statuses and errors
    client_cores: float = 0.0  # the load generator's CPU, in cores
    server_cores: float = 0.0
    broker_cores: float = 0.0
    other_cores: float = 0.0  # the rest of the machine during the trial
    requests: int = 0  # answers hey counted, errors included
    requests_s: float = 0.0  # hey's Requests/sec (errors included)
    seconds: float = 0.0  # how long hey was asked to run (0: not a hey trial)
    planned_s: float = 0.0  # ... and how long the benchmark planned (less when lengthened)
    short: str = ""  # what hey left out for want of answers ("" when every figure is there)


_STATUS = re.compile(r"^\s*\[(\d{3})\]\s+(\d+) responses", re.M)
_ERROR = re.compile(r"^\s*\[(\d+)\]\s+(.+)$", re.M)
_PERCENTILE = re.compile(r"^\s*(\d+)% in ([\d.]+) secs", re.M)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def parse_hey(out: str, per_request: int, ok_status: int = 202) -> Trial:
    """Requests/sec, p50/p99 and status codes from hey's text summary. A percentile hey left
    out (too few answers: it prints ``0% in 0.0000 secs`` in its place, or nothing) is NaN
    and the trial says so in ``short``; only an output without hey's summary raises."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rps:
        raise RuntimeError(f"cannot parse hey's output (no Requests/sec):\n{out}")
    # "0% in 0.0000 secs" stands in for a percentile hey had too few answers for
    shown = {int(p): float(s) * 1000 for p, s in _PERCENTILE.findall(out) if int(p) > 0}
    codes = {int(c): int(n) for c, n in _STATUS.findall(out)}
    failures = {f"HTTP {c}": n for c, n in codes.items() if c != ok_status}
    errors: dict[str, int] = {}
    if "Error distribution:" in out:
        tail = out.split("Error distribution:", 1)[1]
        for n, msg in _ERROR.findall(tail):
            errors[msg.strip()[:120]] = errors.get(msg.strip()[:120], 0) + int(n)
    failures |= errors
    requests = sum(codes.values()) + sum(errors.values())
    missing = [p for p in PERCENTILES if p not in shown]
    short = ""
    if missing:
        which = " and ".join(_ordinal(p) for p in missing)
        short = f"{requests:,} answers, too few for hey's {which} percentile"
    nan = float("nan")
    return Trial(
        events_s=float(rps[1]) * per_request,
        p50_ms=shown.get(50, nan),
        p99_ms=shown.get(99, nan),
        ok=codes.get(ok_status, 0) * per_request,
        failures=failures,
        requests=requests,
        requests_s=float(rps[1]),
        short=short,
    )


def trial_seconds(planned: int, warm: Trial) -> int:
    """How long to run a trial planned for ``planned`` seconds, given a warm-up of the same
    load: long enough for :data:`MIN_REQUESTS` answers at the warm-up's rate (a busy machine
    or a slow path answers fewer per second), never shorter than planned, nor longer than
    :data:`MAX_TRIAL_S`."""
    if warm.requests_s <= 0:
        return max(planned, MAX_TRIAL_S)
    return max(planned, min(math.ceil(MIN_REQUESTS / warm.requests_s), MAX_TRIAL_S))


def hey(
    binary: str,
    server: Server,
    path: str,
    body_file: Path | None,
    headers: dict[str, str],
    *,
    seconds: int,
    concurrency: int,
    per_request: int,
    broker_pid: int | None,
    qps: float | None = None,
    ok_status: int = 202,
    sized_by: Trial | None = None,
) -> Trial:
    """One hey run of ``seconds`` (time-based: ``-z``); the generator's, the server's and the
    broker's CPU measured around it. ``body_file``: POST it as JSON (``None``: GET). ``qps``:
    requests per second *per worker* (a steady load below saturation). ``ok_status``: the
    answer that counts as done. ``sized_by``: a warm-up of the same load just before; the run
    is then lengthened if ``seconds`` would give too few answers (:func:`trial_seconds`). A
    run too short for a percentile is returned with it NaN and ``short`` said, not raised."""
    planned = seconds
    if sized_by is not None:
        seconds = trial_seconds(seconds, sized_by)
    cmd = [binary, "-z", f"{seconds}s", "-c", str(concurrency)]
    if qps is not None:
        cmd += ["-q", f"{qps:g}"]
    if body_file is None:
        cmd += ["-m", "GET"]
    else:
        cmd += ["-m", "POST", "-T", "application/json", "-D", str(body_file)]
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
    trial = parse_hey(text, per_request, ok_status)
    trial.seconds, trial.planned_s = seconds, planned
    trial.client_cores = (usage.ru_utime + usage.ru_stime) / wall
    trial.server_cores = (proc_cpu(server.proc.pid) - server_cpu0) / wall
    trial.broker_cores = (proc_cpu(broker_pid) - broker_cpu0) / wall
    busy = (machine_busy_cpu() - busy0) / wall
    # whatever else ran meanwhile (other test runs, services)
    measured = (trial.client_cores, trial.server_cores, trial.broker_cores)
    trial.other_cores = busy - sum(c for c in measured if not math.isnan(c))
    return trial


def median(trials: list[Trial], attr: str) -> float:
    """The median of a figure over the trials that have it (NaN: a percentile a short trial
    lacks, a process that was gone); NaN when none has it."""
    values = [v for v in (getattr(t, attr) for t in trials) if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def _of_trials(trials: list[Trial], attr: str) -> str:
    """``(2 of 3 trials)`` when short trials lacked the figure, else nothing."""
    have = sum(1 for t in trials if not math.isnan(getattr(t, attr)))
    if have == len(trials):
        return ""
    return f"({have} of {len(trials)} trials)" if have else "(short trials)"


def latency_figures(trials: list[Trial], p99_below_ms: float | None = None) -> dict[str, Figure]:
    """The p50 and p99 (ms, medians over the trials) of a row, p99 with its target if any; a
    figure short trials lacked is the median of the others, marked (n/a when none had it)."""
    return {
        "p50": Figure(
            median(trials, "p50_ms"),
            "ms",
            better="lower",
            fmt=".1f",
            detail=_of_trials(trials, "p50_ms"),
        ),
        "p99": Figure(
            median(trials, "p99_ms"),
            "ms",
            better="lower",
            fmt=".1f",
            detail=_of_trials(trials, "p99_ms"),
            target=None if p99_below_ms is None else Target("<", p99_below_ms),
        ),
    }


def trial_notes(trials: dict[str, list[Trial]], names: dict[str, str] | None = None) -> list[str]:
    """The table notes on trials that did not run as planned, by row key (``names``: the
    rows' short names by key; ``(key)`` otherwise): those lengthened for enough answers
    (:func:`trial_seconds`), and short ones, whose missing percentile is left out of the
    row's median. Nothing when every trial ran as planned."""
    longer, short = [], []
    for k, ts in trials.items():
        name = (names or {}).get(k, f"({k})")
        stretched = [t for t in ts if t.seconds > t.planned_s > 0]
        if stretched:
            runs = ", ".join(f"{t.seconds:g}" for t in stretched)
            longer.append(f"{name}: {len(stretched)} of {len(ts)} ran {runs} s")
        for i, t in enumerate(ts, 1):
            if t.short:
                short.append(f"{name}: trial {i} of {len(ts)} ({t.seconds:g} s), {t.short}")
    notes = []
    if longer:
        notes.append(
            f"trials lengthened (at most {MAX_TRIAL_S} s) where the planned length would have "
            f"given fewer than {MIN_REQUESTS} answers at the warm-up's rate: " + "; ".join(longer)
        )
    if short:
        notes.append(
            "SHORT trials (a percentile missing: too few answers; each row's figure is the "
            "median of the trials that have it, marked): " + "; ".join(short)
        )
    return notes


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any CINEPULSE_* variable (no stray rate limit or
    key path reaches the servers), plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CINEPULSE_")} | extra
