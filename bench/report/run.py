"""Every benchmark of one ``python -m bench`` (:class:`Run`): the report and
``results/bench.json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.report.formatting import SCHEMA, _cell
from bench.report.results import Result


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
