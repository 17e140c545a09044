"""A benchmark's result as data, and the report made from it.

A benchmark's ``run(stack)`` returns one :class:`Table` (or a list of them). A table's rows
hold measured :class:`Figure` s, each with its unit and which way is better; a figure can be
compared with the :class:`Baseline` measured in the same run (the ratio is always
figure / baseline, and the figure says whether higher or lower is better) and can carry a
:class:`Target`, on the figure itself or on a ratio (met or MISSED: never hidden). The
markdown table of the human report, the summary line of the benchmark and
``results/bench.json`` are all generated from that data.
"""

from __future__ import annotations

import math
import operator
import os
import platform
import re
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Better = Literal["higher", "lower"]
Op = Literal[">=", ">", "<=", "<"]

SCHEMA = 1  # of results/bench.json

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


def verdict(ok: bool) -> str:
    """How a report states a target: met, or MISSED (never hidden)."""
    return "met" if ok else "MISSED"


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _num(value: float | None, fmt: str) -> str:
    return format(value, fmt) if value is not None and finite(value) else "n/a"


def _ratio(value: float | None) -> str:
    if value is None or not finite(value):
        return "n/a"
    return f"{value:.2f}x" if 0.01 <= abs(value) < 100 else f"{value:.3g}x"


def _unit(unit: str) -> str:
    return f" {unit}" if unit and unit != "%" else unit


def named(name: str, unit: str) -> str:
    """``name (unit)``, or the bare name when it already says its unit ("fact rows/s")."""
    words = set(re.split(r"[^\w@%]+", name))
    return name if not unit or all(u in words for u in unit.split("/")) else f"{name} ({unit})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# --------------------------------------------------------------------------- figures


@dataclass
class Target:
    """``figure <op> threshold`` (on a :class:`Figure`) or ``ratio <op> threshold`` (on a
    :class:`Baseline`). ``label``: how to state it when the bare threshold would mislead."""

    op: Op
    threshold: float
    label: str = ""

    def met(self, value: float | None) -> bool:
        return finite(value) and _OPS[self.op](value, self.threshold)  # type: ignore[arg-type]

    def text(self, unit: str = "") -> str:
        return self.label or f"{self.op} {self.threshold:,g}{_unit(unit)}"


@dataclass
class Baseline:
    """What a figure is compared with, measured in the same run: ``row`` is the label of the
    table row it comes from (``None``: a baseline that is not a row of the table)."""

    name: str
    value: float | None
    target: Target | None = None  # on the ratio figure / baseline
    headline: bool = False  # the benchmark's headline ratio (see Result.headline)
    row: str | None = None

    def ratio(self, value: float | None) -> float | None:
        if not (finite(value) and finite(self.value)) or self.value == 0:
            return None
        return value / self.value  # type: ignore[operator]


@dataclass
class Figure:
    """One measured number. ``better`` is None for context (shown, not compared, not
    charted unless ``chart`` says so); ``fmt`` is how the table shows the value, ``detail``
    a remark after it (``"(run 12.3 s)"``). ``value`` None: not measured for this row."""

    value: float | None
    unit: str = ""
    better: Better | None = None
    fmt: str = ",.0f"
    detail: str = ""
    target: Target | None = None  # on the value itself
    baselines: list[Baseline] = field(default_factory=list)
    chart: bool | None = None

    @property
    def charted(self) -> bool:
        return self.better is not None if self.chart is None else self.chart

    def text(self) -> str:
        shown = _num(self.value, self.fmt)
        return f"{shown} {self.detail}" if self.detail else shown


@dataclass
class Check:
    """One target of a table, evaluated."""

    row: str  # the row's short name
    figure: str
    what: str  # "events/s vs (a) >= 0.7x", "p99 < 50 ms"
    value: float | None  # what was compared with the threshold: the figure or the ratio
    met: bool

    def text(self) -> str:
        return f"{self.what}: {verdict(self.met)}"


@dataclass
class Row:
    label: str
    figures: dict[str, Figure] = field(default_factory=dict)
    baseline: bool = False  # a row other rows are compared with
    short: str = ""  # for charts and ratio cells; the label when empty

    @property
    def name(self) -> str:
        return self.short or self.label

    def compare(
        self,
        figure: str,
        baseline: Row | float | None,
        *,
        name: str = "",
        target: Target | None = None,
        headline: bool = False,
    ) -> Baseline:
        """Compare this row's ``figure`` with the same figure of another row, or with a
        value (then ``name`` says what it is)."""
        if isinstance(baseline, Row):
            b = Baseline(
                name or baseline.name,
                baseline.figures[figure].value,
                target,
                headline,
                baseline.label,
            )
        else:
            if not name:
                raise ValueError("a baseline that is not a row needs a name")
            b = Baseline(name, baseline, target, headline)
        self.figures[figure].baselines.append(b)
        return b

    def checks(self) -> list[Check]:
        out = []
        for fname, f in self.figures.items():
            if f.target is not None:
                what = f"{fname} {f.target.text(f.unit)}"
                out.append(Check(self.name, fname, what, f.value, f.target.met(f.value)))
            for b in f.baselines:
                if b.target is not None:
                    r = b.ratio(f.value)
                    what = f"{fname} vs {b.name} {b.target.label or f'{b.target.op} {b.target.threshold:g}x'}"
                    out.append(Check(self.name, fname, what, r, b.target.met(r)))
        return out


@dataclass
class Table:
    """A titled table: a label column, then one column per figure name (in order of first
    appearance), then the generated ratio and target columns; then notes."""

    title: str
    label: str = ""  # header of the label column ("path", "system")
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self, label: str, figures: dict[str, Figure], *, baseline: bool = False, short: str = ""
    ) -> Row:
        row = Row(label, dict(figures), baseline, short)
        self.rows.append(row)
        return row

    def figure_names(self) -> list[str]:
        return list(dict.fromkeys(n for r in self.rows for n in r.figures))

    def unit(self, name: str) -> str:
        return next((r.figures[name].unit for r in self.rows if name in r.figures), "")

    def compared(self) -> list[str]:
        """Figure names with at least one baseline, in column order."""
        return [
            n
            for n in self.figure_names()
            if any(r.figures.get(n) and r.figures[n].baselines for r in self.rows)
        ]

    def checks(self) -> list[Check]:
        return [c for r in self.rows for c in r.checks()]

    def header(self, name: str) -> str:
        return named(name, self.unit(name))

    def markdown(self, level: int = 2) -> str:
        names = self.figure_names()
        compared = self.compared()
        has_checks = bool(self.checks())
        head = [self.label, *(self.header(n) for n in names)]
        if compared:
            head.append("vs baseline (figure / baseline)")
        if has_checks:
            head.append("target")
        lines = [
            f"{'#' * level} {self.title}",
            "",
            "| " + " | ".join(_cell(h) for h in head) + " |",
            "|" + "---|" * len(head),
        ]
        for r in self.rows:
            cells = [r.label, *(r.figures[n].text() if n in r.figures else "-" for n in names)]
            if compared:
                ratios = [
                    (f"{n}: " if len(compared) > 1 else "")
                    + ", ".join(
                        f"{_ratio(b.ratio(r.figures[n].value))} {b.name}"
                        for b in r.figures[n].baselines
                    )
                    for n in compared
                    if n in r.figures and r.figures[n].baselines
                ]
                cells.append("; ".join(ratios) or ("baseline" if r.baseline else "-"))
            if has_checks:
                cells.append("; ".join(c.text() for c in r.checks()) or "-")
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        notes = []
        if compared:
            ways: dict[str, list[str]] = {"higher": [], "lower": []}
            for n in compared:
                better = next(r.figures[n].better for r in self.rows if n in r.figures)
                ways[better or "higher"].append(n)
            said = [f"{w} is better for {', '.join(ns)}" for w, ns in ways.items() if ns]
            notes.append(
                "ratios are figure / baseline, both measured in this run; " + "; ".join(said)
            )
        notes += self.notes
        return "\n".join(lines) + "\n" + "".join(f"\n- {n}" for n in notes) + "\n"

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """Plain data (non-finite numbers as null), with the derived ratios and verdicts."""
        d = _clean(asdict(self))
        for row, rd in zip(self.rows, d["rows"], strict=True):
            for fname, fd in rd["figures"].items():
                f = row.figures[fname]
                if f.target is not None:
                    fd["met"] = f.target.met(f.value)
                for b, bd in zip(f.baselines, fd["baselines"], strict=True):
                    r = b.ratio(f.value)
                    bd["ratio"] = r if finite(r) else None
                    if b.target is not None:
                        bd["met"] = b.target.met(r)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Table:
        def target(t: dict[str, Any] | None) -> Target | None:
            return None if t is None else Target(t["op"], t["threshold"], t.get("label", ""))

        def figure(f: dict[str, Any]) -> Figure:
            return Figure(
                value=f["value"],
                unit=f["unit"],
                better=f["better"],
                fmt=f["fmt"],
                detail=f["detail"],
                target=target(f["target"]),
                baselines=[
                    Baseline(b["name"], b["value"], target(b["target"]), b["headline"], b["row"])
                    for b in f["baselines"]
                ],
                chart=f["chart"],
            )

        rows = [
            Row(
                r["label"],
                {n: figure(f) for n, f in r["figures"].items()},
                r["baseline"],
                r["short"],
            )
            for r in d["rows"]
        ]
        return cls(d["title"], d["label"], rows, list(d["notes"]))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


# --------------------------------------------------------------------------- a benchmark's run


@dataclass
class Headline:
    row: str
    figure: str
    unit: str
    value: float | None
    better: Better | None
    baseline: str
    baseline_value: float | None
    ratio: float | None

    def what(self) -> str:
        return f"{self.row}: {self.figure} vs {self.baseline}"

    def text(self) -> str:
        way = f" ({self.better} is better)" if self.better else ""
        return f"{_ratio(self.ratio)}{way}"


@dataclass
class Result:
    """One benchmark of a run: its tables, or the error that stopped it."""

    name: str  # "gateway"
    module: str  # "bench.gateway"
    tables: list[Table] = field(default_factory=list)
    seconds: float = 0.0
    load_start: list[float] = field(default_factory=list)  # 1, 5, 15 min
    load_end: list[float] = field(default_factory=list)
    error: str | None = None  # "RuntimeError: ..." when the benchmark failed
    traceback: str = ""
    chart: str | None = None  # the PNG, relative to the report
    chart_error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def status(self) -> str:
        return "FAILED" if self.failed else "ok"

    def checks(self) -> list[Check]:
        return [c for t in self.tables for c in t.checks()]

    def headline(self) -> Headline | None:
        """The comparison flagged ``headline``; else the first with a target; else the first."""
        found = [
            (r, n, b)
            for t in self.tables
            for r in t.rows
            for n, f in r.figures.items()
            for b in f.baselines
        ]
        if not found:
            return None
        r, n, b = next(
            (x for x in found if x[2].headline),
            next((x for x in found if x[2].target is not None), found[0]),
        )
        f = r.figures[n]
        return Headline(r.name, n, f.unit, f.value, f.better, b.name, b.value, b.ratio(f.value))

    def verdict(self) -> str:
        if self.failed:
            return "-"
        checks = self.checks()
        if not checks:
            return "no target"
        missed = [c for c in checks if not c.met]
        if not missed:
            return f"met ({len(checks)} of {len(checks)})"
        return f"MISSED {len(missed)} of {len(checks)}: " + "; ".join(
            f"{c.row}: {c.what}" for c in missed
        )

    def markdown(self) -> str:
        out = [f"## {self.name}", ""]
        if self.failed:
            out += [f"**FAILED** after {self.seconds:.1f}s: `{_cell(self.error or '')}`", ""]
            if self.traceback:
                tail = "\n".join(self.traceback.rstrip().splitlines()[-15:])
                out += ["```", tail, "```", ""]
            return "\n".join(out)
        out += [f"`{self.module}`, {self.seconds:.1f}s; {self.verdict()}", ""]
        out += [t.markdown(level=3) for t in self.tables]
        if self.chart:
            out += [f"![{self.name}: figures and baselines]({self.chart})", ""]
        if self.chart_error:
            out += [f"chart FAILED: `{_cell(self.chart_error)}`", ""]
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        head = self.headline()
        return _clean(
            {
                "name": self.name,
                "module": self.module,
                "status": self.status,
                "seconds": self.seconds,
                "load_start": self.load_start,
                "load_end": self.load_end,
                "error": self.error,
                "traceback": self.traceback,
                "chart": self.chart,
                "chart_error": self.chart_error,
                "verdict": self.verdict(),
                "headline": None if head is None else asdict(head),
                "tables": [t.to_dict() for t in self.tables],
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        return cls(
            name=d["name"],
            module=d["module"],
            tables=[Table.from_dict(t) for t in d["tables"]],
            seconds=d["seconds"],
            load_start=list(d["load_start"]),
            load_end=list(d["load_end"]),
            error=d["error"],
            traceback=d["traceback"],
            chart=d["chart"],
            chart_error=d["chart_error"],
        )


# --------------------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    """What the figures were measured on (machines here are shared and noisy)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    os_name = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory / 2**30, 1),
        "os": f"{os_name}, {platform.system()} {platform.release()} {platform.machine()}",
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def commit() -> str:
    """The checked-out commit, and whether the tree had local changes (read-only git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} + local changes" if dirty else head


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    """Every benchmark of one ``python -m bench``: the report and results/bench.json."""

    started: str  # ISO 8601, UTC
    finished: str = ""
    argv: list[str] = field(default_factory=list)
    commit: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    load_start: list[float] = field(default_factory=list)
    load_end: list[float] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)

    def exit_code(self) -> int:
        """1 when a benchmark (or its chart) failed; a MISSED target is reported, not fatal."""
        return 1 if any(r.failed or r.chart_error for r in self.results) else 0

    def markdown(self) -> str:
        m = self.machine
        load = " / ".join(f"{x:.2f}" for x in self.load_start)
        load_end = " / ".join(f"{x:.2f}" for x in self.load_end)
        failed = [r.name for r in self.results if r.failed]
        lines = [
            "# Cinepulse benchmarks",
            "",
            f"{self.started} to {self.finished}; `python -m bench{''.join(' ' + a for a in self.argv)}`"
            f" at commit {self.commit}",
            "",
            "| machine | |",
            "|---|---|",
            f"| host | {_cell(str(m.get('host')))} |",
            f"| CPU | {_cell(str(m.get('cpu')))}, {m.get('cores')} cores "
            f"({m.get('usable_cores')} usable by this process) |",
            f"| memory | {m.get('memory_gib')} GiB |",
            f"| OS | {_cell(str(m.get('os')))} |",
            f"| Python | {m.get('python')} |",
            f"| load average (1 / 5 / 15 min) | start {load}; end {load_end} |",
            "",
            "## Summary",
            "",
            "| benchmark | status | headline | ratio | targets | time | load (1 min) start, end |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.results:
            head = r.headline()
            what, ratio = (head.what(), head.text()) if head else ("-", "-")
            if r.failed:
                what, ratio = _cell(r.error or ""), "-"
            load_r = (
                f"{r.load_start[0]:.2f}, {r.load_end[0]:.2f}"
                if r.load_start and r.load_end
                else "-"
            )
            lines.append(
                f"| {r.name} | {r.status} | {_cell(what)} | {ratio} | {_cell(r.verdict())} | "
                f"{r.seconds:.0f}s | {load_r} |"
            )
        lines += [
            "",
            f"{len(self.results)} benchmark(s), "
            + (f"FAILED: {', '.join(failed)}" if failed else "none failed")
            + f"; exit code {self.exit_code()}. Ratios are figure / baseline, measured side by "
            "side in this run; absolute figures move with the machine's load.",
            "",
        ]
        lines += [r.markdown() for r in self.results]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "started": self.started,
            "finished": self.finished,
            "argv": self.argv,
            "commit": self.commit,
            "machine": self.machine,
            "load_start": self.load_start,
            "load_end": self.load_end,
            "exit_code": self.exit_code(),
            "benchmarks": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Run:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"bench.json schema {d.get('schema')!r}, expected {SCHEMA}")
        return cls(
            started=d["started"],
            finished=d["finished"],
            argv=list(d["argv"]),
            commit=d["commit"],
            machine=dict(d["machine"]),
            load_start=list(d["load_start"]),
            load_end=list(d["load_end"]),
            results=[Result.from_dict(r) for r in d["benchmarks"]],
        )
