"""What every component of the local stack does: install, start, probe, pid, stop, kill."""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from pathlib import Path

from cinepulse_devstack.config import StackSettings
from cinepulse_devstack.procs import (
    StackError,
    kill,
    pid_alive,
    read_pid,
    terminate,
)


class Component(ABC):
    name: str

    def __init__(self, cfg: StackSettings) -> None:
        self.cfg = cfg
        self.dir = cfg.root / self.name

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def pidfile(self) -> Path:
        return self.dir / f"{self.name}.pid"

    @property
    @abstractmethod
    def ports(self) -> list[int]: ...

    @property
    def version(self) -> str:
        return "?"

    @abstractmethod
    def install(self) -> None:
        """Fetch or build what the component needs (cached; a no-op when present)."""

    @abstractmethod
    def start(self) -> None:
        """Spawn the process (the caller has checked it is not running and waits for it)."""

    @abstractmethod
    def probe(self) -> None:
        """Raise unless the component answers a real request."""

    def pid(self) -> int | None:
        return read_pid(self.pidfile)

    def alive(self) -> bool:
        return pid_alive(self.pid())

    def stop(self) -> None:
        terminate(self.pid())
        self.pidfile.unlink(missing_ok=True)

    def kill(self, sig: int = signal.SIGKILL, timeout_s: float = 30.0) -> int:
        """Send ``sig`` (default SIGKILL: no shutdown hook runs) to the running process and
        its process group, as a crash or an OOM kill would, and wait until they are gone.
        Returns the pid. The pid file stays: ``status`` names the dead process and ``up``
        starts it again."""
        pid = self.pid()
        if pid is None or not self.alive():
            raise StackError(f"{self.name} is not running (pid {pid}): nothing to kill")
        try:
            kill(pid, sig, timeout_s)
        except ProcessLookupError:
            raise StackError(f"{self.name} (pid {pid}) exited before it was killed") from None
        return pid

    def env(self) -> dict[str, str]:
        return {}
