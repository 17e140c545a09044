"""Process helpers: spawn detached, track by pid file, stop politely then firmly."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class StackError(RuntimeError):
    """A component is missing, failed to start, or does not answer. The message says how to
    fix it."""


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if not path:
        raise StackError(f"{name} not found on PATH: {hint}")
    return path


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) is not alive; but a zombie main thread
    # whose other threads are still running or exiting is a process still holding its files
    # and sockets (a killed JVM or Python with many threads, for a few milliseconds)
    with contextlib.suppress(OSError):
        if _state(Path(f"/proc/{pid}")) == "Z":
            return any(_state(t) not in ("Z", "X", "") for t in _tasks(pid))
    return True


def _state(proc: Path) -> str:
    """The state letter of a /proc process or task folder ("" when it is gone)."""
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _tasks(pid: int) -> list[Path]:
    try:
        return [p for p in Path(f"/proc/{pid}/task").iterdir() if p.name != str(pid)]
    except OSError:
        return []


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def spawn(
    cmd: Sequence[str],
    *,
    log: Path,
    pidfile: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Start ``cmd`` in its own session (it outlives this process), output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            list(cmd),
            stdin=devnull,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def terminate(pid: int | None, timeout_s: float = 30.0) -> None:
    if not pid_alive(pid):
        return
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid`` (Linux ``/proc``)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            # fields after the command: state, ppid, pgrp, ...
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def kill(pid: int, sig: int = signal.SIGKILL, timeout_s: float = 30.0) -> list[int]:
    """Send ``sig`` to the process ``pid`` and, when it leads its own process group (a
    process :func:`spawn` started, or a daemon such as the postmaster), to the whole group:
    the way a pod dies, children (a JVM, worker processes) included. Waits until they are
    gone and returns the pids signalled. Never signals this process's own group."""
    if not pid_alive(pid):
        raise ProcessLookupError(f"process {pid} is not running")
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pgid = -1
    group = pgid == pid and pgid != os.getpgrp()
    targets = group_members(pgid) if group else [pid]
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)
    if sig not in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        return targets  # e.g. SIGSTOP/SIGCONT: nothing to wait for
    deadline = time.monotonic() + timeout_s
    while True:
        for p in targets:
            _reap(p)
        left = [p for p in targets if pid_alive(p)]
        if not left:
            return targets
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes {left} still alive {timeout_s:g}s after signal {sig}")
        time.sleep(0.05)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        return s.connect_ex((host, port)) == 0


def wait_until(
    probe: Callable[[], object],
    *,
    timeout_s: float,
    alive: Callable[[], bool],
    what: str,
    log: Path,
) -> None:
    """Poll ``probe`` until it stops raising; fail early if the process died."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            probe()
            return
        except Exception as exc:  # the probe's failure means "not ready yet"
            last = exc
        if not alive():
            raise StackError(f"{what} exited during start-up; last log lines:\n{tail(log)}")
        time.sleep(0.25)
    raise StackError(
        f"{what} did not answer within {timeout_s:g}s ({last}); last log lines:\n{tail(log)}"
    )


def tail(path: Path, lines: int = 15) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"  (no log at {path})"
    return "\n".join(f"  {line}" for line in content[-lines:])


def run(cmd: Sequence[str], *, what: str, hint: str = "", **kwargs: object) -> str:
    """Run a setup command to completion; a failure names the step and shows its output."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip().splitlines()[-20:]
        detail = "\n".join(f"  {line}" for line in out)
        raise StackError(
            f"{what} failed (exit {proc.returncode}){': ' + hint if hint else ''}\n{detail}"
        )
    return str(proc.stdout)


def stack_secret(path: Path, nbytes: int = 24) -> str:
    """A random secret kept in ``path`` (mode 0600, made on first use): the local stand-in
    for a mounted Secret's file."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(nbytes))
        path.chmod(0o600)
    return path.read_text().strip()
