"""tmdb-fetcher's command line: arguments, the summary, the exit codes."""

from __future__ import annotations

import pytest

from cinepulse_tmdb_fetcher.__main__ import (
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_SINK,
    EXIT_UNAVAILABLE,
    parse_args,
    summary,
)
from cinepulse_tmdb_fetcher.pipeline import Counts


# --- the command line --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_parse_args_modes(mode: str) -> None:
    args = parse_args([mode])
    assert (args.mode, args.dry_run) == (mode, False)
    args = parse_args(["--dry-run", mode])
    assert (args.mode, args.dry_run) == (mode, True)


def test_parse_args_ids() -> None:
    args = parse_args(["--dry-run", "ids", "550", "603", "27205"])
    assert args.mode == "ids"
    assert args.dry_run is True
    assert args.ids == [550, 603, 27205]


@pytest.mark.parametrize(
    "argv", [["ids"], ["ids", "abc"], [], ["sideways"]], ids=["no-id", "not-int", "none", "bad"]
)
def test_parse_args_refuses_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    capsys.readouterr()


def test_summary_lists_counts_and_not_found_ids() -> None:
    counts = Counts(discovered=10, fetched=7, updated=5, unchanged=2, not_found=2, malformed=1)
    counts.not_found_ids = [111, 222]
    text = summary("ids", counts, 12.34, {"dry_run": False, "exit_code": 0})
    lines = text.splitlines()
    assert lines[0] == "tmdb-fetcher ids: 12.3s"
    assert any(line.split() == ["fetched", "7"] for line in lines)
    assert any(line.split() == ["not_found", "2"] for line in lines)
    assert any(line.split() == ["malformed", "1"] for line in lines)
    assert any(line.split() == ["exit_code", "0"] for line in lines)
    assert "not found: 111, 222" in text
    assert "not_found_ids" not in text


def test_summary_without_not_found_ids_has_no_such_line() -> None:
    text = summary("full", Counts(fetched=3), 1.0, {})
    assert "not found:" not in text


def test_exit_codes_are_distinct() -> None:
    codes = [EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_AUTH, EXIT_UNAVAILABLE, EXIT_SINK]
    assert len(set(codes)) == len(codes)
    assert EXIT_OK == 0
    assert EXIT_CONFIG == 2  # argparse's own code for bad arguments
