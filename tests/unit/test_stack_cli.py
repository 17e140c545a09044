"""The stack CLI reports a stopped stack as a clear error, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cinepulse_devstack import cli


@pytest.mark.parametrize("command", ["migrate", "smoke"])
def test_commands_needing_the_stack_name_what_is_down(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a stack rooted in an empty folder: nothing of it is running
    monkeypatch.setenv("CINEPULSE_STACK_ROOT", str(tmp_path))
    assert cli.main([command]) == 1
    err = capsys.readouterr().err
    assert f"cinepulse-stack {command}: needs postgres" in err
    assert "postgres DOWN (not started" in err and "Run `make up` first." in err
    assert "Traceback" not in err
