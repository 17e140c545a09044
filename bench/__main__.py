"""``make bench``: run every benchmark against the real local stack, write one report.

Each benchmark module exposes ``run(stack) -> Table`` (or a list of tables): figures and
their baselines are measured side by side in the same run and reported as ratios (machines
here are noisy). A module's ``STACK`` names the stack components it needs (``[]``: none;
absent: all of them); they are started before it runs if they are not up already, and only
what this run started is stopped at the end.

Written under ``results/``: ``bench.md`` (the machine, a summary line per benchmark, then
each benchmark's tables, notes and chart), ``bench.json`` (the same figures as data, for
comparing runs) and ``bench/<name>.png``. A benchmark that raises is recorded as FAILED and
the others still run; the exit code is then 1. Any Spark a benchmark left running in this
process (a session, its JVM) is stopped before the next one starts.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import charts
from bench.report import Result, Run, Table, commit, load_average, machine
from bench.spark_session import stop_spark

BENCHMARKS = [
    "bench.staging_load",
    "bench.archiver_probe",
    "bench.gateway",
    "bench.tmdb_fetch",
    "bench.emotion",
    "bench.spark_stream",
    "bench.fallback",
    "bench.api",
    "bench.recommender",
]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class _LazyStack:
    """The local stack, started component by component when a benchmark first needs it."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self.stack: Any = None
        self.started: list[str] = []

    def up(self, names: list[str] | None) -> Any:
        if names == []:
            return None
        if self.stack is None:
            self.stack = self.factory()
        t0 = time.monotonic()
        started = self.stack.up(names)
        self.started += [n for n in started if n not in self.started]
        if started:
            _log(f"stack: started {', '.join(started)} in {time.monotonic() - t0:.1f}s")
        return self.stack

    def down(self) -> None:
        if self.started:  # never down() with no names: that stops everything
            _log(f"stack: stopping what this run started ({', '.join(self.started)})")
            self.stack.down(self.started)


def _stack_factory() -> Any:
    from cinepulse_devstack import Stack

    return Stack()


def run_one(module_name: str, stack: _LazyStack) -> Result:
    result = Result(module_name.rsplit(".", 1)[-1], module_name, load_start=load_average())
    t0 = time.monotonic()
    try:
        module = importlib.import_module(module_name)
        handle = stack.up(getattr(module, "STACK", None))
        t0 = time.monotonic()
        out = module.run(handle)
        tables = out if isinstance(out, list) else [out]
        if not tables or not all(isinstance(t, Table) for t in tables):
            raise TypeError(f"run() returned {type(out).__name__}, not a Table or a list of them")
        result.tables = tables
    except Exception as exc:  # one benchmark's failure is reported, the others still run
        result.error = f"{type(exc).__name__}: {exc}".strip()
        result.traceback = traceback.format_exc()
    result.seconds = time.monotonic() - t0
    result.load_end = load_average()
    stop_spark_left_by(module_name)
    return result


def stop_spark_left_by(module_name: str) -> None:
    """The next benchmark neither shares nor inherits a SparkSession (or its JVM) this one
    left running, whether it failed or not; a benchmark should stop its own
    (:func:`bench.spark_session.spark_session`), so one left over is logged."""
    try:
        stopped = stop_spark()
    except Exception as exc:  # best effort: the next benchmark still runs
        _log(f"{module_name}: stopping Spark failed: {type(exc).__name__}: {exc}")
        return
    if stopped:
        _log(f"{module_name} left Spark running; stopped {', '.join(stopped)}")


def chart(result: Result, out: Path) -> None:
    if result.failed:
        return
    path = out / "bench" / f"{result.name}.png"
    try:
        if charts.render(result, path):
            result.chart = path.relative_to(out).as_posix()
    except Exception as exc:  # reported, and the run exits non-zero
        result.chart_error = f"{type(exc).__name__}: {exc}"


def main(
    argv: list[str] | None = None,
    *,
    out: Path = Path("results"),
    stack_factory: Callable[[], Any] = _stack_factory,
) -> int:
    """``python -m bench [NAME...]``: every benchmark, or those whose module name contains
    one of the NAMEs (``python -m bench gateway``)."""
    wanted = sys.argv[1:] if argv is None else argv
    chosen = [b for b in BENCHMARKS if not wanted or any(w in b for w in wanted)]
    if not chosen:
        print(f"no benchmark matches {wanted}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    run = Run(
        started=_now(),
        argv=list(wanted),
        commit=commit(),
        machine=machine(),
        load_start=load_average(),
    )
    stack = _LazyStack(stack_factory)
    try:
        for name in chosen:
            _log(f"{name} ...")
            result = run_one(name, stack)
            run.results.append(result)
            state = f"FAILED: {result.error}" if result.failed else "done"
            _log(f"{name} {state} in {result.seconds:.1f}s")
    finally:
        stack.down()
    run.finished = _now()
    run.load_end = load_average()
    for result in run.results:
        chart(result, out)
    report = run.markdown()
    (out / "bench.md").write_text(report)
    (out / "bench.json").write_text(json.dumps(run.to_dict(), indent=1) + "\n")
    print(report)
    _log(f"report: {out / 'bench.md'}, data: {out / 'bench.json'}, charts: {out / 'bench'}/")
    return run.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
