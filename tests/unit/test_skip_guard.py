"""The skip guard (tests/skip_guard.py): with $CI set a session that skipped a test not in
ALLOWED_IN_CI fails, naming it and its reason; a listed skip does not; without $CI skips
only show in the summary."""

from __future__ import annotations

import pytest

from tests.skip_guard import ALLOWED_IN_CI, allowed, in_ci

pytest_plugins = ["pytester"]

CONFTEST = """
from tests import skip_guard

def pytest_configure(config):
    skip_guard.install(config)
"""

UNLISTED = """
import pytest

def test_runs():
    pass

def test_needs_a_tool():
    pytest.skip("frobnicator is not installed")
"""

MODULE_SKIP = """
import pytest

pytest.skip("helm is not built", allow_module_level=True)

def test_never():
    pass
"""

LISTED = """
import pytest

def test_an_image():
    pytest.skip("cinepulse/api:1.0 is not built (make image-api)")

@pytest.mark.xfail(reason="known")
def test_expected_to_fail():
    assert False
"""


@pytest.fixture
def ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")


@pytest.fixture
def no_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("CINEPULSE_STRICT_SKIPS", raising=False)  # make test sets it


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    return pytester


@pytest.mark.usefixtures("ci")
def test_in_ci_an_unlisted_skip_fails_the_session_and_is_named(project: pytest.Pytester) -> None:
    project.makepyfile(test_tools=UNLISTED)
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*skipped in CI (not allowed)*",
            "SKIPPED test_tools.py::test_needs_a_tool: frobnicator is not installed",
            "1 skipped under $CI*ALLOWED_IN_CI*",
        ]
    )


@pytest.mark.usefixtures("ci")
def test_in_ci_a_module_skipped_whole_fails_the_session(project: pytest.Pytester) -> None:
    project.makepyfile(test_chart=MODULE_SKIP)
    result = project.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["SKIPPED test_chart.py: helm is not built"])


@pytest.mark.usefixtures("ci")
def test_in_ci_a_listed_skip_and_an_xfail_pass(project: pytest.Pytester) -> None:
    project.mkdir("tests")
    project.mkdir("tests/images")
    (project.path / "tests/images/test_api_image.py").write_text(LISTED)
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
    assert "not allowed" not in result.stdout.str()


@pytest.mark.usefixtures("ci")
def test_in_ci_a_listed_place_with_another_reason_still_fails(project: pytest.Pytester) -> None:
    project.mkdir("tests")
    project.mkdir("tests/images")
    (project.path / "tests/images/test_x.py").write_text(UNLISTED)
    result = project.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.usefixtures("ci")
def test_in_ci_a_failure_keeps_its_exit_code(project: pytest.Pytester) -> None:
    project.makepyfile(test_tools=UNLISTED + "\ndef test_broken():\n    assert False\n")
    result = project.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*skipped in CI (not allowed)*"])


@pytest.mark.usefixtures("no_ci")
def test_without_ci_skips_do_not_fail(project: pytest.Pytester) -> None:
    project.makepyfile(test_tools=UNLISTED, test_chart=MODULE_SKIP)
    result = project.runpytest("-p", "no:cacheprovider", "-ra")
    result.assert_outcomes(passed=1, skipped=2)
    assert result.ret == pytest.ExitCode.OK
    assert "not allowed" not in result.stdout.str()
    result.stdout.fnmatch_lines(["SKIPPED*frobnicator is not installed"])  # -ra says why


def test_every_allowed_skip_says_why() -> None:
    assert ALLOWED_IN_CI
    for entry in ALLOWED_IN_CI:
        assert entry.where.startswith("tests/") and entry.reason and len(entry.why) > 20
    assert allowed("tests/images/test_images.py::test_x[api]", "podman is not installed")
    assert not allowed("tests/unit/test_chart.py", "podman is not installed")


@pytest.mark.parametrize(
    ("value", "on"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("", False),
        ("no", False),
        (None, False),
    ],
)
def test_only_1_true_yes_turn_ci_on(
    monkeypatch: pytest.MonkeyPatch, value: str | None, on: bool
) -> None:
    monkeypatch.delenv("CINEPULSE_STRICT_SKIPS", raising=False)  # make test sets it
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is on


def test_ci_false_only_reports_skips(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "false")
    monkeypatch.delenv("CINEPULSE_STRICT_SKIPS", raising=False)
    project.makepyfile(test_unlisted=UNLISTED)
    result = project.runpytest("-ra", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    assert "skipped in CI (not allowed)" not in result.stdout.str()


def test_make_test_is_strict_as_ci(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make test`` sets CINEPULSE_STRICT_SKIPS: a skip fails it as in CI, CI or not."""
    monkeypatch.setenv("CI", "false")
    monkeypatch.setenv("CINEPULSE_STRICT_SKIPS", "1")
    assert in_ci()
    project.makepyfile(test_unlisted=UNLISTED)
    result = project.runpytest("-ra", "-p", "no:cacheprovider")
    assert result.ret != pytest.ExitCode.OK
    assert "skipped in CI (not allowed)" in result.stdout.str()


def test_the_makefile_test_target_turns_strict_skips_on() -> None:
    from pathlib import Path

    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    assert "test: export CINEPULSE_STRICT_SKIPS = 1" in makefile
