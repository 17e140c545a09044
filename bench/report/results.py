"""A benchmark's run (:class:`Result`): its tables, its status and its headline."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.report.formatting import Better, _cell, _ratio
from bench.report.tables import Check, Table, _clean


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
