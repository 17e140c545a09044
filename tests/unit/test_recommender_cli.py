"""``cinepulse-recommender``'s exit codes when the configuration or the database is not
usable: 2 (the variable named on stderr), 4 (unreachable), nothing on stdout."""

from __future__ import annotations

import pytest


def test_train_exit_codes_without_a_usable_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cinepulse_recommender.__main__ import main

    monkeypatch.delenv("CINEPULSE_POSTGRES__DSN", raising=False)
    assert main(["train"]) == 2  # configuration: the variable is named
    assert "CINEPULSE_POSTGRES" in capsys.readouterr().err
    monkeypatch.setenv(
        "CINEPULSE_POSTGRES__DSN", "postgresql://u:p@127.0.0.1:9/x?connect_timeout=1"
    )
    monkeypatch.setenv("CINEPULSE_MODEL__THREADS", "0")
    assert main(["train"]) == 2  # a bad value
    assert "CINEPULSE_MODEL__THREADS" in capsys.readouterr().err
    monkeypatch.delenv("CINEPULSE_MODEL__THREADS")
    assert main(["train"]) == 4  # nothing listens on port 9
    out = capsys.readouterr()
    assert "PostgreSQL unreachable" in out.err and out.out == ""
    assert main(["models"]) == 4
