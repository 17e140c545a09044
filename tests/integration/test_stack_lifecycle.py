"""The stack's own behaviour: a killed component is named by status; up is re-runnable;
down leaves nothing running. Uses a second, private stack (FerretDB only: cheap) so the
session's stack is untouched."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from cinepulse_devstack import Stack, StackError, StackSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_stack(tmp_path: Path, stack: Stack):
    cfg = StackSettings(
        root=tmp_path / "stack",
        mongo_port=_free_port(),
        ferretdb_debug_port=_free_port(),
        start_timeout_s=60,
    )
    s = Stack(cfg)
    yield s
    s.down()


def test_kill_is_named_by_status_and_up_recovers(private_stack: Stack) -> None:
    assert private_stack.up(["mongo"]) == ["mongo"]
    assert private_stack.up(["mongo"]) == []  # re-runnable: nothing to start
    [status] = private_stack.status(["mongo"])
    assert status.ok

    pid = private_stack.mongo.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0) if _is_child(pid) else None
    [status] = private_stack.status(["mongo"])
    assert not status.ok and status.name == "mongo"
    assert f"process {pid} is not running" in status.detail

    assert private_stack.up(["mongo"]) == ["mongo"]
    private_stack.down(["mongo"])
    [status] = private_stack.status(["mongo"])
    assert not status.ok and "not started" in status.detail


def test_taken_port_is_reported_by_name(private_stack: Stack, stack: Stack) -> None:
    busy = Stack(private_stack.cfg.model_copy(update={"mongo_port": stack.cfg.mongo_port}))
    with pytest.raises(StackError, match=r"mongo: port\(s\) \[\d+\] on 127.0.0.1 are taken"):
        busy.up(["mongo"])


def test_unknown_component_is_refused(private_stack: Stack) -> None:
    with pytest.raises(StackError, match="unknown component"):
        private_stack.up(["redis"])


def _is_child(pid: int) -> bool:
    try:
        return (
            int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid()
        )
    except (OSError, ValueError):
        return False
