"""A benchmark's result: a titled markdown table plus notes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        head = f"## {self.title}\n\n| {' | '.join(self.columns)} |\n|{'---|' * len(self.columns)}\n"
        body = "".join(f"| {' | '.join(r)} |\n" for r in self.rows)
        notes = "".join(f"\n- {n}" for n in self.notes)
        return head + body + notes + "\n"


def verdict(ok: bool) -> str:
    """How a note states a target: met, or MISSED (never hidden)."""
    return "met" if ok else "MISSED"
