"""A benchmark's table: :class:`Figure` s in :class:`Row` s, each compared with a
:class:`Baseline` and held to a :class:`Target`; its markdown and its JSON."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.report.formatting import (
    _OPS,
    Better,
    Op,
    _cell,
    _num,
    _ratio,
    _unit,
    finite,
    named,
    verdict,
)


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
