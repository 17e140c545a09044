"""The benchmarks' load trials and Spark hygiene (issue 22): hey's output parsed from real
runs, a trial too short for a percentile reported rather than fatal, trials sized from their
warm-up, and a SparkSession (and its JVM) stopped before the next benchmark. No stack, no
JVM: hey is a stand-in script, Spark's objects are fakes."""

from __future__ import annotations

import math
import os
import stat
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as harness
from bench import spark_session
from bench.gateway.table import gateway_table
from bench.loadgen import (
    MAX_TRIAL_S,
    MIN_REQUESTS,
    Server,
    Trial,
    hey,
    latency_figures,
    median,
    parse_hey,
    trial_notes,
    trial_seconds,
)
from bench.report import Table

# --------------------------------------------------------------------------- hey's output

#: ``hey -z 2s -c 8 -m POST`` against a server answering 202 after 250 ms: 56 answers, too
#: few for a 99th percentile, which hey v0.1.4 prints as "0% in 0.0000 secs" (the gateway's
#: batch warm-up on a busy machine)
HEY_SHORT = """
Summary:
  Total:	2.0505 secs
  Slowest:	1.2715 secs
  Fastest:	0.2509 secs
  Average:	0.2904 secs
  Requests/sec:	27.3105

  Total data:	1624 bytes
  Size/request:	29 bytes

Response time histogram:
  0.251 [1]	|■
  0.353 [53]	|■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■
  0.455 [0]	|
  0.557 [0]	|
  0.659 [0]	|
  0.761 [0]	|
  0.863 [0]	|
  0.965 [0]	|
  1.067 [0]	|
  1.169 [0]	|
  1.271 [2]	|■■


Latency distribution:
  10% in 0.2516 secs
  25% in 0.2520 secs
  50% in 0.2532 secs
  75% in 0.2561 secs
  90% in 0.2601 secs
  95% in 1.2709 secs
  0% in 0.0000 secs

Details (average, fastest, slowest):
  DNS+dialup:	0.0366 secs, 0.2509 secs, 1.2715 secs
  DNS-lookup:	0.0000 secs, 0.0000 secs, 0.0000 secs
  req write:	0.0001 secs, 0.0000 secs, 0.0007 secs
  resp wait:	0.2534 secs, 0.2503 secs, 0.2625 secs
  resp read:	0.0002 secs, 0.0000 secs, 0.0015 secs

Status code distribution:
  [202]	56 responses
"""

#: the same server answering after 5 ms for 1 s: every percentile
HEY_FULL = """
Summary:
  Total:	1.0240 secs
  Slowest:	1.0136 secs
  Fastest:	0.0055 secs
  Average:	0.0091 secs
  Requests/sec:	857.4323

  Total data:	25462 bytes
  Size/request:	29 bytes

Response time histogram:
  0.006 [1]	|
  0.106 [875]	|■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■
  0.207 [0]	|
  0.308 [0]	|
  0.409 [0]	|
  0.510 [0]	|
  0.610 [0]	|
  0.711 [0]	|
  0.812 [0]	|
  0.913 [0]	|
  1.014 [2]	|


Latency distribution:
  10% in 0.0059 secs
  25% in 0.0061 secs
  50% in 0.0066 secs
  75% in 0.0073 secs
  90% in 0.0082 secs
  95% in 0.0089 secs
  99% in 0.0112 secs

Details (average, fastest, slowest):
  DNS+dialup:	0.0026 secs, 0.0055 secs, 1.0136 secs
  DNS-lookup:	0.0000 secs, 0.0000 secs, 0.0000 secs
  req write:	0.0001 secs, 0.0000 secs, 0.0010 secs
  resp wait:	0.0063 secs, 0.0053 secs, 0.0130 secs
  resp read:	0.0002 secs, 0.0000 secs, 0.0033 secs

Status code distribution:
  [202]	878 responses
"""

#: every request refused: no latency at all, the errors counted
HEY_REFUSED = """
Summary:
  Total:	1.2750 secs
  Slowest:	0.0000 secs
  Fastest:	0.0000 secs
  Average:	 NaN secs
  Requests/sec:	5298.7299


Response time histogram:


Latency distribution:

Details (average, fastest, slowest):
  DNS+dialup:	 NaN secs, 0.0000 secs, 0.0000 secs
  DNS-lookup:	 NaN secs, 0.0000 secs, 0.0000 secs
  req write:	 NaN secs, 0.0000 secs, 0.0000 secs
  resp wait:	 NaN secs, 0.0000 secs, 0.0000 secs
  resp read:	 NaN secs, 0.0000 secs, 0.0000 secs

Status code distribution:

Error distribution:
  [6756]	Get "http://127.0.0.1:18799/": dial tcp 127.0.0.1:18799: connect: connection refused
"""


def test_a_complete_hey_run_gives_every_figure() -> None:
    trial = parse_hey(HEY_FULL, per_request=100)
    assert trial.events_s == pytest.approx(857.4323 * 100)
    assert trial.requests_s == pytest.approx(857.4323)
    assert (trial.p50_ms, trial.p99_ms) == (pytest.approx(6.6), pytest.approx(11.2))
    assert trial.ok == 878 * 100 and trial.requests == 878
    assert trial.failures == {} and trial.short == ""


def test_a_run_too_short_for_the_99th_percentile_is_short_not_an_error() -> None:
    trial = parse_hey(HEY_SHORT, per_request=100)  # raised "cannot parse hey's output" before
    assert trial.p50_ms == pytest.approx(253.2)
    assert math.isnan(trial.p99_ms)  # not the "0% in 0.0000 secs" hey prints in its place
    assert trial.events_s == pytest.approx(2731.05) and trial.ok == 5600
    assert trial.short == "56 answers, too few for hey's 99th percentile"


def test_a_run_with_every_request_failed_is_short_with_its_errors() -> None:
    trial = parse_hey(HEY_REFUSED, per_request=1, ok_status=200)
    assert math.isnan(trial.p50_ms) and math.isnan(trial.p99_ms)
    assert trial.ok == 0 and trial.requests == 6756
    [(error, n)] = trial.failures.items()
    assert "connection refused" in error and n == 6756
    assert trial.short == "6,756 answers, too few for hey's 50th and 99th percentile"


def test_output_that_is_not_a_hey_summary_still_raises() -> None:
    with pytest.raises(RuntimeError, match="cannot parse hey's output"):
        parse_hey("panic: runtime error: index out of range\n", per_request=1)


# --------------------------------------------------------------------------- trial length


def warm(requests_s: float) -> Trial:
    return Trial(events_s=requests_s, p50_ms=1.0, p99_ms=2.0, ok=0, requests_s=requests_s)


@pytest.mark.parametrize(
    ("requests_s", "seconds"),
    [
        (857.4, 8),  # fast: as planned
        (27.31, math.ceil(MIN_REQUESTS / 27.31)),  # the slow batch: lengthened
        (2.0, MAX_TRIAL_S),  # very slow: capped (then reported short if still short)
        (0.0, MAX_TRIAL_S),  # the warm-up got no answer at all
    ],
)
def test_a_trial_is_sized_from_its_warm_up(requests_s: float, seconds: int) -> None:
    assert trial_seconds(8, warm(requests_s)) == seconds
    assert MIN_REQUESTS >= 100  # hey prints its 99th percentile from 100 answers on


def fake_hey(tmp_path: Path, output: str) -> tuple[str, Path]:
    """A stand-in for hey: prints ``output`` and records its arguments."""
    (tmp_path / "out.txt").write_text(output)
    args = tmp_path / "args.txt"
    script = tmp_path / "hey"
    script.write_text(f'#!/bin/sh\necho "$@" > {args}\ncat {tmp_path / "out.txt"}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), args


def fake_server() -> Server:
    proc = types.SimpleNamespace(pid=os.getpid())  # its CPU is read from /proc, nothing else
    return Server("gateway", proc, "http://127.0.0.1:9", Path("/dev/null"))  # type: ignore[arg-type]


def test_hey_runs_for_a_time_sized_by_the_warm_up_and_returns_a_short_trial(
    tmp_path: Path,
) -> None:
    binary, args = fake_hey(tmp_path, HEY_SHORT)
    body = tmp_path / "batch.json"
    body.write_text("[]")
    kwargs: dict[str, Any] = {"concurrency": 8, "per_request": 100, "broker_pid": None}
    first = hey(binary, fake_server(), "/api/events/batch", body, {}, seconds=2, **kwargs)
    assert args.read_text().split()[:4] == ["-z", "2s", "-c", "8"]
    assert math.isnan(first.p99_ms) and first.short  # the warm-up: short, and no raise
    trial = hey(
        binary, fake_server(), "/api/events/batch", body, {}, seconds=8, sized_by=first, **kwargs
    )
    assert args.read_text().split()[:2] == ["-z", "11s"]  # 300 answers at 27.3/s
    assert (trial.seconds, trial.planned_s) == (11, 8)
    assert trial.client_cores >= 0 and not math.isnan(trial.server_cores)


# --------------------------------------------------------------------------- the report


def trial(p99: float, seconds: float = 8, short: str = "") -> Trial:
    return Trial(
        events_s=5_000.0,
        p50_ms=2.0 if not math.isnan(p99) else float("nan"),
        p99_ms=p99,
        ok=1000,
        client_cores=0.5,
        server_cores=1.0,
        broker_cores=0.3,
        other_cores=0.1,
        requests=1000,
        requests_s=125.0,
        seconds=seconds,
        planned_s=8,
        short=short,
    )


def test_a_short_trial_is_left_out_of_the_median_and_the_figure_is_marked() -> None:
    nan = float("nan")
    ts = [trial(nan, short="56 answers, too few"), trial(20.0), trial(30.0)]
    assert median(ts, "p99_ms") == 25.0
    figures = latency_figures(ts, 50.0)
    assert figures["p99"].value == 25.0 and figures["p99"].detail == "(2 of 3 trials)"
    none = latency_figures([trial(nan, short="x")] * 3, 50.0)["p99"]
    assert math.isnan(none.value or 0.0) and none.detail == "(short trials)"
    assert none.text() == "n/a (short trials)"
    assert latency_figures([trial(20.0)] * 3)["p99"].detail == ""


def test_trial_notes_say_which_trials_were_lengthened_or_short() -> None:
    nan = float("nan")
    notes = trial_notes(
        {
            "a": [trial(5.0)] * 3,
            "d": [trial(20.0, seconds=11), trial(nan, seconds=60, short="84 answers, too few")],
        }
    )
    assert len(notes) == 2
    assert "(d): 2 of 2 ran 11, 60 s" in notes[0] and "(a)" not in notes[0]
    assert notes[1].startswith("SHORT trials")
    assert "(d): trial 2 of 2 (60 s), 84 answers, too few" in notes[1]
    assert trial_notes({"a": [trial(5.0)] * 3}) == []
    named = trial_notes({"d": [trial(5.0, seconds=11)]}, {"d": "(d) gateway, batch of 100"})
    assert "(d) gateway, batch of 100: 1 of 1 ran 11 s" in named[0]


def test_the_gateway_table_reports_a_short_batch_trial() -> None:
    nan = float("nan")
    trials = {k: [trial(10.0)] * 3 for k in ("a", "b", "c", "s")}
    trials["d"] = [trial(12.0), trial(nan, short="56 answers, too few"), trial(14.0)]
    table = gateway_table(trials, acked_events=10, topic_growth=10, gateway_log="")
    assert isinstance(table, Table)
    md = table.markdown()
    assert "13.0 (2 of 3 trials)" in md
    [short] = [n for n in table.notes if n.startswith("SHORT trials")]
    assert "(d) gateway, batch of 100: trial 2 of 3 (8 s), 56 answers, too few" in short


# --------------------------------------------------------------------------- Spark


class FakeQuery:
    def __init__(self) -> None:
        self.name, self.id, self.stopped = "events", "q-1", False

    def stop(self) -> None:
        self.stopped = True


class FakeSession:
    def __init__(self, fail: bool = False) -> None:
        self.query = FakeQuery()
        self.streams = types.SimpleNamespace(active=[self.query])
        self.fail, self.stopped = fail, 0

    def stop(self) -> None:
        self.stopped += 1
        if self.fail:
            raise ConnectionError("the JVM is gone")


class FakeGateway:
    """py4j's gateway with pyspark's ``proc``: a process that, like the JVM, exits when its
    stdin closes."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.shut = False

    def shutdown(self) -> None:
        self.shut = True


@pytest.fixture
def fake_spark(monkeypatch: pytest.MonkeyPatch) -> Any:
    """pyspark's own classes, their class-level state replaced by fakes (restored after)."""
    pytest.importorskip("pyspark")
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    monkeypatch.setattr(SparkSession, "getActiveSession", classmethod(lambda cls: None))
    for cls, attr in (
        (SparkSession, "_activeSession"),
        (SparkSession, "_instantiatedSession"),
        (SparkContext, "_active_spark_context"),
        (SparkContext, "_gateway"),
        (SparkContext, "_jvm"),
    ):
        monkeypatch.setattr(cls, attr, None)
    return SparkSession, SparkContext


def test_stop_spark_stops_the_query_the_session_and_the_jvm(fake_spark: Any) -> None:
    session_cls, context_cls = fake_spark
    session, gateway = FakeSession(), FakeGateway()
    session_cls._activeSession = session_cls._instantiatedSession = session
    context_cls._gateway, context_cls._jvm = gateway, object()
    try:
        stopped = spark_session.stop_spark()
    finally:
        if gateway.proc.poll() is None:
            gateway.proc.kill()
    assert stopped == [
        "streaming query events",
        "SparkSession",
        f"the JVM (pid {gateway.proc.pid})",
    ]
    assert session.query.stopped and session.stopped == 1  # once, though held twice
    assert gateway.shut and gateway.proc.returncode == 0  # ended by its stdin closing
    assert session_cls._activeSession is None and session_cls._instantiatedSession is None
    assert context_cls._gateway is None and context_cls._jvm is None
    assert spark_session.stop_spark() == []  # nothing left


def test_stop_spark_clears_a_session_whose_jvm_died_and_a_bare_context(fake_spark: Any) -> None:
    session_cls, context_cls = fake_spark
    session_cls._instantiatedSession = FakeSession(fail=True)
    context = types.SimpleNamespace(stop=lambda: None)
    context_cls._active_spark_context = context
    stopped = spark_session.stop_spark()  # does not raise
    assert stopped == [
        "streaming query events",
        "SparkSession (its stop failed: ConnectionError)",
    ]
    assert session_cls._instantiatedSession is None
    assert context_cls._active_spark_context is None


def test_stop_spark_imports_nothing_when_no_benchmark_used_spark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m == "pyspark" or m.startswith("pyspark.")]:
        monkeypatch.delitem(sys.modules, name)
    assert spark_session.stop_spark() == []
    assert "pyspark" not in sys.modules


def test_spark_session_is_stopped_on_error_and_when_its_start_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def stop() -> list[str]:
        calls.append("stop")
        return []

    monkeypatch.setattr(spark_session, "stop_spark", stop)
    with pytest.raises(ValueError), spark_session.spark_session(lambda: "session") as s:  # type: ignore[arg-type,return-value]
        assert s == "session"
        raise ValueError("the query failed")
    assert calls == ["stop"]

    def half_started() -> Any:
        raise RuntimeError("the JVM is up, the session is not")

    with pytest.raises(RuntimeError), spark_session.spark_session(half_started):
        pass
    assert calls == ["stop", "stop"]


def test_the_harness_stops_spark_left_by_any_benchmark_before_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    order: list[str] = []
    left = iter([["SparkSession", "the JVM (pid 1)"], []])

    def stop() -> list[str]:
        order.append("stop")
        return next(left)

    def boom(stack: object) -> Table:
        order.append("boom")
        raise RuntimeError("failed with its session up")

    def ok(stack: object) -> Table:
        order.append("ok")
        return Table("ok")

    for name, run in (("fakespark_boom", boom), ("fakespark_ok", ok)):
        module = types.ModuleType(name)
        module.run = run  # type: ignore[attr-defined]
        module.STACK = []  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(harness, "BENCHMARKS", ["fakespark_boom", "fakespark_ok"])
    monkeypatch.setattr(harness, "stop_spark", stop)
    monkeypatch.setattr(harness.charts, "render", lambda result, path: False)
    code = harness.main(["fakespark"], out=tmp_path, stack_factory=lambda: None)
    assert code == 1
    assert order == ["boom", "stop", "ok", "stop"]
    err = capsys.readouterr().err
    assert "fakespark_boom left Spark running; stopped SparkSession, the JVM (pid 1)" in err
