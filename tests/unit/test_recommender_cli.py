"""``cinepulse-recommender``'s exit codes when the configuration or the database is not
usable: 2 (the variable named on stderr), 4 (unreachable), nothing on stdout."""

from __future__ import annotations

import pytest

from tests.unit.push_capture import Pushes, pushgateway  # noqa: F401 - the fixture


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


def test_a_failed_training_run_still_pushes_its_outcome(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pushgateway: Pushes,  # noqa: F811 - the fixture
) -> None:
    """The training Job pushes its run's metrics whatever the outcome: a Job that keeps
    failing shows as succeeded 0 and an old last success, not as silence."""
    from cinepulse_recommender.__main__ import main

    monkeypatch.setenv(
        "CINEPULSE_POSTGRES__DSN", "postgresql://u:p@127.0.0.1:9/x?connect_timeout=1"
    )
    monkeypatch.setenv("CINEPULSE_PUSHGATEWAY_URL", pushgateway.url)
    assert main(["train"]) == 4
    capsys.readouterr()
    [(method, path, body)] = pushgateway.received
    # POST: added to the group, so the last success's figures stay there (a PUT of unset
    # gauges would push them as 0)
    assert (method, path) == ("POST", "/metrics/job/cinepulse-recommender-training")
    assert b"cinepulse_recommender_training_last_run_succeeded 0.0" in body
    assert b"cinepulse_recommender_training_last_run_timestamp_seconds" in body
    assert b"last_success_timestamp_seconds" not in body and b"_pairs" not in body
