"""The benchmark report (bench.report, bench.charts, the bench.__main__ harness): figures,
ratios and targets rendered from data, results/bench.json, the PNG charts, and a failing
benchmark reported without stopping the others. Nothing here needs the local stack."""

from __future__ import annotations

import json
import math
import struct
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as harness
from bench import charts
from bench.report import Figure, Result, Run, Table, Target, named

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def gateway_like() -> Table:
    """A ceiling row, a compared row with a ratio target, a steady row with a value target."""
    table = Table("Gateway into Kafka", "path")
    ceiling = table.add(
        "(a) HTTP ceiling: bare FastAPI",
        {
            "events/s": Figure(10_000.0, "events/s", better="higher"),
            "p99": Figure(8.0, "ms", better="lower", fmt=".1f"),
        },
        baseline=True,
        short="(a) ceiling",
    )
    single = table.add(
        "(c) gateway, one event per request",
        {
            "events/s": Figure(6_000.0, "events/s", better="higher"),
            "p99": Figure(20.0, "ms", better="lower", fmt=".1f"),
        },
        short="(c) gateway",
    )
    steady = table.add(
        "(c') gateway at a steady 1,000 events/s",
        {
            "events/s": Figure(1_000.0, "events/s", better="higher"),
            "p99": Figure(61.5, "ms", better="lower", fmt=".1f", target=Target("<", 50)),
        },
    )
    single.compare("events/s", ceiling, target=Target(">=", 0.7), headline=True)
    steady.compare("events/s", ceiling)
    table.notes.append("a note of the benchmark's own")
    return table


def body_rows(markdown: str) -> dict[str, list[str]]:
    """The table's body rows by their first cell."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| path"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = cells
    return rows


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, data[:8]
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --------------------------------------------------------------------------- tables


def test_ratio_and_verdicts_are_rendered_from_the_figures() -> None:
    md = gateway_like().markdown()
    head = next(line for line in md.splitlines() if line.startswith("| path"))
    assert head == ("| path | events/s | p99 (ms) | vs baseline (figure / baseline) | target |")
    rows = body_rows(md)
    ceiling = rows["(a) HTTP ceiling: bare FastAPI"]
    assert ceiling[1:] == ["10,000", "8.0", "baseline", "-"]
    single = rows["(c) gateway, one event per request"]
    # 6,000 / 10,000 = 0.60 < 0.7: missed, and said so
    assert single[1:] == [
        "6,000",
        "20.0",
        "0.60x (a) ceiling",
        "events/s vs (a) ceiling >= 0.7x: MISSED",
    ]
    steady = rows["(c') gateway at a steady 1,000 events/s"]
    assert steady[3:] == ["0.10x (a) ceiling", "p99 < 50 ms: MISSED"]
    assert (
        "- ratios are figure / baseline, both measured in this run; higher is better for events/s"
        in md
    )
    assert md.rstrip().endswith("- a note of the benchmark's own")


def test_a_met_target_says_met() -> None:
    table = gateway_like()
    single = table.rows[1]
    single.figures["events/s"].value = 7_500.0
    table.rows[2].figures["p99"].value = 12.0
    checks = {c.what: c for c in table.checks()}
    assert checks["events/s vs (a) ceiling >= 0.7x"].met
    assert checks["events/s vs (a) ceiling >= 0.7x"].value == pytest.approx(0.75)
    assert checks["p99 < 50 ms"].met
    rows = body_rows(table.markdown())
    assert rows["(c) gateway, one event per request"][-1] == (
        "events/s vs (a) ceiling >= 0.7x: met"
    )


@pytest.mark.parametrize(
    ("op", "threshold", "value", "met"),
    [
        (">=", 0.7, 0.7, True),
        (">", 0.7, 0.7, False),
        ("<", 50, 49.9, True),
        ("<", 50, 50, False),
        ("<=", 5, 5, True),
        (">=", 1, None, False),  # not measured: never met
        (">=", 1, math.nan, False),
    ],
)
def test_target_comparisons(op: Any, threshold: float, value: float | None, met: bool) -> None:
    assert Target(op, threshold).met(value) is met


def test_a_missing_figure_or_baseline_is_na_not_a_crash() -> None:
    table = Table("t", "system")
    base = table.add("baseline", {"rate": Figure(0.0, "x/s", better="higher")}, baseline=True)
    ours = table.add("ours", {"rate": Figure(None, "x/s", better="higher", target=Target(">=", 1))})
    ours.compare("rate", base, target=Target(">=", 2))
    rows = body_rows(table.markdown())
    assert rows["ours"][1:] == [
        "n/a",
        "n/a baseline",
        "rate >= 1 x/s: MISSED; rate vs baseline >= 2x: MISSED",
    ]


def test_one_figure_against_two_baselines() -> None:
    table = Table("Recommender", "model")
    ndcg = {"NDCG@10": 0.142}
    lightfm = table.add(
        "LightFM", {k: Figure(v, better="higher", fmt=".3f") for k, v in ndcg.items()}
    )
    als = table.add("ALS", {"NDCG@10": Figure(0.1406, better="higher")}, baseline=True)
    pop = table.add("popularity", {"NDCG@10": Figure(0.0878, better="higher")}, baseline=True)
    lightfm.compare("NDCG@10", als, target=Target(">=", 1.3), headline=True)
    lightfm.compare("NDCG@10", pop, target=Target(">=", 1.5))
    rows = body_rows(table.markdown())
    assert rows["LightFM"][1:] == [
        "0.142",
        "1.01x ALS, 1.62x popularity",
        "NDCG@10 vs ALS >= 1.3x: MISSED; NDCG@10 vs popularity >= 1.5x: met",
    ]
    assert (
        result("recommender", [table]).verdict() == "MISSED 1 of 2: LightFM: NDCG@10 vs ALS >= 1.3x"
    )


@pytest.mark.parametrize(
    ("name", "unit", "header"),
    [
        ("p99", "ms", "p99 (ms)"),
        ("fact rows/s", "rows/s", "fact rows/s"),
        ("events/s per server core", "events/s/core", "events/s per server core"),
        ("transform", "s", "transform (s)"),  # an "s" inside a word is not the unit
        ("test macro-F1", "", "test macro-F1"),
    ],
)
def test_column_headers_say_the_unit_once(name: str, unit: str, header: str) -> None:
    assert named(name, unit) == header


def test_a_baseline_that_is_not_a_row_needs_a_name() -> None:
    row = Table("t").add("spark", {"rows/s": Figure(100.0, "rows/s", better="higher")})
    with pytest.raises(ValueError, match="needs a name"):
        row.compare("rows/s", 400.0)
    b = row.compare("rows/s", 400.0, name="COPY", target=Target(">=", 0.25))
    assert b.row is None
    assert b.ratio(100.0) == 0.25


# --------------------------------------------------------------------------- results and the run


def result(name: str = "gateway", tables: list[Table] | None = None) -> Result:
    return Result(
        name,
        f"bench.{name}",
        tables if tables is not None else [gateway_like()],
        seconds=12.5,
        load_start=[0.5, 0.4, 0.3],
        load_end=[1.5, 0.6, 0.35],
    )


def test_headline_and_verdict_of_a_benchmark() -> None:
    r = result()
    head = r.headline()
    assert head is not None
    assert (head.row, head.figure, head.baseline) == ("(c) gateway", "events/s", "(a) ceiling")
    assert head.ratio == pytest.approx(0.6)
    assert head.text() == "0.60x (higher is better)"
    assert r.verdict() == (
        "MISSED 2 of 2: (c) gateway: events/s vs (a) ceiling >= 0.7x; "  # short row names
        "(c') gateway at a steady 1,000 events/s: p99 < 50 ms"
    )
    assert result(tables=[Table("none")]).verdict() == "no target"


def run_of(*results: Result) -> Run:
    return Run(
        started="2026-11-29 10:00:00 UTC",
        finished="2026-11-29 10:05:00 UTC",
        argv=["gateway"],
        commit="abc1234",
        machine={
            "host": "vm",
            "cpu": "AMD EPYC",
            "cores": 2,
            "usable_cores": 2,
            "memory_gib": 23.4,
            "os": "Debian GNU/Linux 12 (bookworm), Linux 6.1 x86_64",
            "python": "3.11.7 (CPython)",
        },
        load_start=[0.13, 0.62, 0.97],
        load_end=[1.9, 1.2, 1.0],
        results=list(results),
    )


def test_report_header_states_the_machine_and_a_summary_line_per_benchmark() -> None:
    failed = Result(
        "api",
        "bench.api",
        error="RuntimeError: the api exited",
        traceback="Traceback ...\nRuntimeError: the api exited",
    )
    md = run_of(result(), failed).markdown()
    assert "| CPU | AMD EPYC, 2 cores (2 usable by this process) |" in md
    assert "| memory | 23.4 GiB |" in md
    assert (
        "| load average (1 / 5 / 15 min) | start 0.13 / 0.62 / 0.97; end 1.90 / 1.20 / 1.00 |" in md
    )
    assert (
        "2026-11-29 10:00:00 UTC to 2026-11-29 10:05:00 UTC; `python -m bench gateway` at commit abc1234"
        in md
    )
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    lines = [
        line
        for line in summary.splitlines()
        if line.startswith("| gateway") or line.startswith("| api")
    ]
    assert lines[0].startswith(
        "| gateway | ok | (c) gateway: events/s vs (a) ceiling | 0.60x (higher is better) | MISSED 2 of 2"
    )
    assert lines[0].endswith("| 12s | 0.50, 1.50 |")
    assert lines[1].startswith("| api | FAILED | RuntimeError: the api exited | - | - |")
    assert "FAILED: api; exit code 1" in md
    assert "**FAILED** after 0.0s: `RuntimeError: the api exited`" in md


def test_exit_code() -> None:
    assert run_of(result()).exit_code() == 0  # a MISSED target is reported, not fatal
    assert run_of(result(), Result("x", "bench.x", error="E: boom")).exit_code() == 1
    broken_chart = result()
    broken_chart.chart_error = "ValueError: bad"
    assert run_of(broken_chart).exit_code() == 1


def test_json_round_trip() -> None:
    table = gateway_like()
    table.rows[0].figures["p99"].value = math.nan  # e.g. a broker restarted mid-trial
    original = run_of(result(tables=[table]), Result("api", "bench.api", error="E: boom"))
    text = json.dumps(original.to_dict(), allow_nan=False)  # strict JSON: no NaN token
    data = json.loads(text)
    assert data["schema"] == 1 and data["exit_code"] == 1
    gateway = data["benchmarks"][0]
    fig = gateway["tables"][0]["rows"][1]["figures"]["events/s"]
    assert fig["baselines"][0]["ratio"] == pytest.approx(0.6)
    assert fig["baselines"][0]["met"] is False
    assert gateway["tables"][0]["rows"][0]["figures"]["p99"]["value"] is None
    assert gateway["headline"]["ratio"] == pytest.approx(0.6)
    assert data["benchmarks"][1]["status"] == "FAILED"

    again = Run.from_dict(data)
    assert again.to_dict() == original.to_dict()
    table.rows[0].figures["p99"].value = None  # what the NaN became (NaN != NaN besides)
    assert again == original
    assert again.markdown() == original.markdown()


def test_json_of_another_schema_is_refused() -> None:
    data = run_of(result()).to_dict() | {"schema": 99}
    with pytest.raises(ValueError, match="schema 99"):
        Run.from_dict(data)


# --------------------------------------------------------------------------- charts


def test_chart_is_a_real_png(tmp_path: Path) -> None:
    path = tmp_path / "bench" / "gateway.png"
    assert charts.render(result(), path)
    width, height = png_size(path)
    assert width >= 800 and height >= 300, (width, height)
    assert path.stat().st_size > 15_000  # bars, labels and text, not an empty canvas


def test_chart_panels_one_per_unit_with_outside_baselines_and_log_scale() -> None:
    throughput = Table("Spark", "path")
    spark = throughput.add(
        "Spark", {"rows/s": Figure(3_000.0, "rows/s", better="higher"), "batches": Figure(7.0)}
    )
    spark.compare("rows/s", 150_000.0, name="COPY", target=Target(">=", 0.25))
    panels = charts.panels(result("spark_stream", [gateway_like(), throughput]))
    assert [(p.table.title, p.unit, p.names) for p in panels] == [
        ("Gateway into Kafka", "events/s", ["events/s"]),
        ("Gateway into Kafka", "ms", ["p99"]),
        ("Spark", "rows/s", ["rows/s"]),  # batches: context, not charted
    ]
    assert [g.label for g in panels[2].groups] == ["Spark", "baseline: COPY"]
    assert panels[2].groups[1].baseline
    assert max(charts._positive(panels[2])) / min(charts._positive(panels[2])) > charts.LOG_SPAN


def test_nothing_to_chart_writes_nothing(tmp_path: Path) -> None:
    table = Table("context only")
    table.add("x", {"seconds": Figure(1.0, "s")})
    path = tmp_path / "x.png"
    assert not charts.render(result("x", [table]), path)
    assert not path.exists()


# --------------------------------------------------------------------------- the harness


class FakeStack:
    def __init__(self, starts: list[str]) -> None:
        self.starts = starts
        self.calls: list[tuple[str, object]] = []

    def up(self, names: list[str] | None) -> list[str]:
        self.calls.append(("up", names))
        return self.starts

    def down(self, names: list[str] | None) -> None:
        self.calls.append(("down", names))


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, run: Any, **attrs: Any) -> None:
    module = types.ModuleType(name)
    module.run = run  # type: ignore[attr-defined]
    for k, v in attrs.items():
        setattr(module, k, v)
    monkeypatch.setitem(sys.modules, name, module)


def boom(stack: object) -> Table:
    raise RuntimeError("boom: the broker went away")


def test_a_failing_benchmark_is_reported_the_others_run_and_the_exit_code_is_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_module(monkeypatch, "fakebench_boom", boom, STACK=[])
    fake_module(monkeypatch, "fakebench_ok", lambda stack: gateway_like(), STACK=[])
    monkeypatch.setattr(harness, "BENCHMARKS", ["fakebench_boom", "fakebench_ok"])

    def no_stack() -> None:
        raise AssertionError("no benchmark asked for the stack")

    code = harness.main(["fakebench"], out=tmp_path, stack_factory=no_stack)
    assert code == 1
    md = (tmp_path / "bench.md").read_text()
    assert "| fakebench_boom | FAILED | RuntimeError: boom: the broker went away |" in md
    assert "RuntimeError: boom: the broker went away" in md.split("## fakebench_boom", 1)[1]
    assert "| fakebench_ok | ok |" in md
    assert "![fakebench_ok: figures and baselines](bench/fakebench_ok.png)" in md
    png_size(tmp_path / "bench" / "fakebench_ok.png")
    assert not (tmp_path / "bench" / "fakebench_boom.png").exists()
    data = json.loads((tmp_path / "bench.json").read_text())
    assert [b["status"] for b in data["benchmarks"]] == ["FAILED", "ok"]
    assert data["exit_code"] == 1
    assert "Traceback" in data["benchmarks"][0]["traceback"]
    assert "fakebench_boom FAILED: RuntimeError: boom" in capsys.readouterr().err


def test_all_ok_exits_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_module(
        monkeypatch, "fakebench_ok", lambda stack: [gateway_like(), Table("more")], STACK=[]
    )
    monkeypatch.setattr(harness, "BENCHMARKS", ["fakebench_ok"])
    assert harness.main(["fakebench"], out=tmp_path, stack_factory=FakeStack([])) == 0
    assert harness.main(["nothing-matches"], out=tmp_path) == 2


def test_a_run_returning_no_table_is_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_module(monkeypatch, "fakebench_str", lambda stack: "| a | table |", STACK=[])
    monkeypatch.setattr(harness, "BENCHMARKS", ["fakebench_str"])
    assert harness.main(["fakebench"], out=tmp_path) == 1
    assert "TypeError: run() returned str" in (tmp_path / "bench.md").read_text()


@pytest.mark.parametrize(
    ("starts", "downs"),
    [
        (["postgres", "kafka"], [("down", ["postgres", "kafka"])]),
        ([], []),  # all were up already: nothing is stopped (down() with no names stops all)
    ],
)
def test_the_stack_is_started_when_needed_and_only_what_was_started_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starts: list[str], downs: list[object]
) -> None:
    stack = FakeStack(starts)
    seen: list[object] = []

    def needs_postgres(s: object) -> Table:
        seen.append(s)
        return gateway_like()

    fake_module(monkeypatch, "fakebench_a", needs_postgres, STACK=["postgres"])
    fake_module(monkeypatch, "fakebench_b", boom)  # no STACK: every component
    fake_module(monkeypatch, "fakebench_c", lambda s: seen.append(s) or gateway_like(), STACK=[])
    monkeypatch.setattr(harness, "BENCHMARKS", ["fakebench_a", "fakebench_b", "fakebench_c"])
    assert harness.main(["fakebench"], out=tmp_path, stack_factory=lambda: stack) == 1
    assert seen == [stack, None]
    assert stack.calls == [("up", ["postgres"]), ("up", None), *downs]
