"""``Component.kill`` / ``procs.kill``: a crash as the fault drills inject it. A component's
process dies with its whole process group (a driver and its JVM, like a pod), the pid file
stays so that ``status`` names the dead process, and a process that does not lead its own
group is killed alone (the caller's group is never signalled)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cinepulse_devstack.components import Component
from cinepulse_devstack.config import StackSettings
from cinepulse_devstack.procs import StackError, group_members, kill, pid_alive, spawn


class Sleeper(Component):
    """A component whose process starts a child of its own (as a Python driver starts its
    JVM): ``sh`` leading its session, with a ``sleep`` in the background."""

    name = "sleeper"

    @property
    def ports(self) -> list[int]:
        return []

    def install(self) -> None:
        pass

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        spawn(
            ["sh", "-c", f"sleep 300 & echo $! > {self.dir / 'child.pid'}; wait"],
            log=self.log_path,
            pidfile=self.pidfile,
        )

    def probe(self) -> None:
        if not (self.dir / "child.pid").exists():
            raise RuntimeError("not started yet")

    def child(self) -> int:
        deadline = time.monotonic() + 10
        path = self.dir / "child.pid"
        while time.monotonic() < deadline:
            text = path.read_text().strip() if path.exists() else ""
            if text:
                return int(text)
            time.sleep(0.05)
        raise AssertionError("the child never wrote its pid")


def test_kill_takes_the_process_group_and_leaves_the_pid_file(tmp_path: Path) -> None:
    sleeper = Sleeper(StackSettings(root=tmp_path))
    sleeper.start()
    pid, child = sleeper.pid(), sleeper.child()
    assert pid is not None and pid_alive(pid) and pid_alive(child)
    assert set(group_members(pid)) >= {pid, child}

    assert sleeper.kill() == pid
    assert not pid_alive(pid) and not pid_alive(child)  # the child went with it
    assert group_members(pid) == []
    assert sleeper.pidfile.exists() and not sleeper.alive()  # status names the dead pid

    with pytest.raises(StackError, match="sleeper is not running"):
        sleeper.kill()


def test_a_process_outside_its_own_group_is_killed_alone(tmp_path: Path) -> None:
    # a child of this test in the test's own process group: only that pid may be signalled
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        assert os.getpgid(proc.pid) == os.getpgrp()
        assert kill(proc.pid, signal.SIGKILL, timeout_s=10) == [proc.pid]
        assert not pid_alive(proc.pid)  # reaped by kill() itself
    finally:
        if proc.poll() is None:
            proc.kill()
    assert pid_alive(os.getpid())  # and we are still here


def test_a_signal_that_does_not_end_the_process_returns_at_once(tmp_path: Path) -> None:
    sleeper = Sleeper(StackSettings(root=tmp_path))
    sleeper.start()
    pid = sleeper.pid()
    assert pid is not None
    try:
        sleeper.child()
        assert sleeper.kill(signal.SIGSTOP) == pid
        deadline = time.monotonic() + 10
        while _state(pid) != "T" and time.monotonic() < deadline:
            time.sleep(0.02)  # the signal is delivered asynchronously
        assert _state(pid) == "T"  # stopped, not gone
        assert sleeper.alive()
    finally:
        sleeper.kill(signal.SIGCONT)
        sleeper.kill()
    with pytest.raises(ProcessLookupError):
        kill(pid)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_process_whose_main_thread_exited_is_alive_while_its_threads_run() -> None:
    """A killed multi-threaded process (a JVM, a Python driver) shows its main thread as a
    zombie while the other threads are still exiting, and its sockets are still open: it is
    not gone yet (``up`` would find its port taken)."""
    code = (
        "import ctypes, threading, time\n"
        "threading.Thread(target=time.sleep, args=(30,)).start()\n"
        "ctypes.CDLL(None).pthread_exit(None)\n"  # the main thread ends, the process not
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        while _state(proc.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _state(proc.pid) == "Z"  # the main thread is a zombie ...
        assert pid_alive(proc.pid)  # ... and the process is alive
        kill(proc.pid, signal.SIGKILL, timeout_s=10)
        assert not pid_alive(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
