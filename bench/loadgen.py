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


@dataclass
class Trial:
    events_s: float  # per second: requests x events per request
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


def parse_hey(out: str, per_request: int, ok_status: int = 202) -> Trial:
    """Requests/sec, p50/p99 and status codes from hey's text summary."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s*50% in ([\d.]+) secs", out, re.M)
    p99 = re.search(r"^\s*99% in ([\d.]+) secs", out, re.M)
    if not (rps and p50 and p99):
        raise RuntimeError(f"cannot parse hey's output:\n{out}")
    codes = {int(c): int(n) for c, n in _STATUS.findall(out)}
    failures = {f"HTTP {c}": n for c, n in codes.items() if c != ok_status}
    if "Error distribution:" in out:
        errors = out.split("Error distribution:", 1)[1]
        failures |= {msg.strip()[:120]: int(n) for n, msg in _ERROR.findall(errors)}
    return Trial(
        events_s=float(rps[1]) * per_request,
        p50_ms=float(p50[1]) * 1000,
        p99_ms=float(p99[1]) * 1000,
        ok=codes.get(ok_status, 0) * per_request,
        failures=failures,
    )


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
) -> Trial:
    """One hey run; the generator's, the server's and the broker's CPU measured around it.
    ``body_file``: POST it as JSON (``None``: GET). ``qps``: requests per second *per
    worker* (a steady load below saturation). ``ok_status``: the answer that counts as done."""
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
    trial.client_cores = (usage.ru_utime + usage.ru_stime) / wall
    trial.server_cores = (proc_cpu(server.proc.pid) - server_cpu0) / wall
    trial.broker_cores = (proc_cpu(broker_pid) - broker_cpu0) / wall
    busy = (machine_busy_cpu() - busy0) / wall
    # whatever else ran meanwhile (other test runs, services)
    measured = (trial.client_cores, trial.server_cores, trial.broker_cores)
    trial.other_cores = busy - sum(c for c in measured if not math.isnan(c))
    return trial


def median(trials: list[Trial], attr: str) -> float:
    return statistics.median(getattr(t, attr) for t in trials)


def latency_figures(trials: list[Trial], p99_below_ms: float | None = None) -> dict[str, Figure]:
    """The p50 and p99 (ms, medians over the trials) of a row, p99 with its target if any."""
    return {
        "p50": Figure(median(trials, "p50_ms"), "ms", better="lower", fmt=".1f"),
        "p99": Figure(
            median(trials, "p99_ms"),
            "ms",
            better="lower",
            fmt=".1f",
            target=None if p99_below_ms is None else Target("<", p99_below_ms),
        ),
    }


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any CINEPULSE_* variable (no stray rate limit or
    key path reaches the servers), plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CINEPULSE_")} | extra
