"""One PNG per benchmark, drawn from its tables (matplotlib, Agg backend, no display).

For each table, one panel per unit: horizontal bars, one per charted figure of that unit and
row (grouped when a unit has several figures, e.g. p50 and p99); baseline rows, and baselines
that are not rows of the table, hatched; a compared bar is labelled with its value and its
ratio to the baseline; a target is a red line across the bars it applies to (a ratio target at
threshold x baseline). A panel whose values span more than :data:`LOG_SPAN` is on a log scale.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; before anything imports pyplot

from matplotlib.figure import Figure as Canvas
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from bench.report import Figure, Result, Table, Target, finite, named

LOG_SPAN = 20.0
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
TARGET = "#D62728"
DPI = 110


@dataclass
class Group:
    """One label on a panel's y axis: a row, or a baseline that is not a row."""

    label: str
    baseline: bool
    figures: dict[str, Figure]  # by figure name; an outside baseline as a bare Figure


@dataclass
class Panel:
    table: Table
    unit: str
    names: list[str]
    groups: list[Group]
    first: bool  # the table's first panel (it carries the table's title)


def _wrap(text: str, width: int = 34, lines: int = 3) -> str:
    return "\n".join(textwrap.wrap(text, width, max_lines=lines, placeholder=" ..."))


def _unit(unit: str) -> str:
    return f" {unit}" if unit and unit != "%" else unit


def _target_text(target: Target, suffix: str) -> str:
    op = {">=": "\u2265", "<=": "\u2264"}.get(target.op, target.op)
    return f"{op}{target.threshold:,g}{suffix}"


def panels(result: Result) -> list[Panel]:
    out: list[Panel] = []
    for table in result.tables:
        by_unit: dict[str, list[str]] = {}
        for name in table.figure_names():
            figs = [r.figures[name] for r in table.rows if name in r.figures]
            if any(f.charted and finite(f.value) for f in figs):
                by_unit.setdefault(table.unit(name), []).append(name)
        first = True
        for unit, names in by_unit.items():
            groups: list[Group] = []
            outside: set[tuple[str, str]] = set()
            for row in table.rows:
                shown = {n: row.figures[n] for n in names if n in row.figures}
                if not any(finite(f.value) for f in shown.values()):
                    continue
                groups.append(Group(row.name, row.baseline, shown))
                for n, f in shown.items():
                    for b in f.baselines:
                        if b.row is None and finite(b.value) and (n, b.name) not in outside:
                            outside.add((n, b.name))
                            bare = Figure(b.value, f.unit, f.better, f.fmt)
                            groups.append(Group(f"baseline: {b.name}", True, {n: bare}))
            out.append(Panel(table, unit, names, groups, first))
            first = False
    return out


def _positive(panel: Panel) -> list[float]:
    values: list[float] = []
    for g in panel.groups:
        for f in g.figures.values():
            if f.value is not None and finite(f.value):
                values.append(f.value)
            if f.target is not None:
                values.append(f.target.threshold)
            for b in f.baselines:
                if b.target is not None and b.value is not None and finite(b.value):
                    values.append(b.target.threshold * b.value)
    return [v for v in values if v > 0]


def _draw(ax: object, panel: Panel, colours: dict[str, str]) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    k = len(panel.names)
    height = 0.8 / k
    values = _positive(panel)
    top = max(values, default=1.0)
    log = bool(values) and top / min(values) > LOG_SPAN
    targets: dict[str, None] = {}  # their labels, in order, once each
    for i, g in enumerate(panel.groups):
        for j, name in enumerate(panel.names):
            f = g.figures.get(name)
            if f is None or not finite(f.value):
                continue
            y = i + (j - (k - 1) / 2) * height
            value = f.value or 0.0
            colour = colours[name]
            ax.barh(
                y,
                value,
                height=height * 0.92,
                color=colour,
                alpha=0.45 if g.baseline else 0.95,
                hatch="///" if g.baseline else None,
                edgecolor=colour,
                linewidth=0.8,
            )
            text = f" {format(value, f.fmt)}"
            ratios = [
                f"{r:.2f}x {b.name}"
                for b in f.baselines
                if (r := b.ratio(f.value)) is not None and math.isfinite(r)
            ]
            if ratios:
                text += "  (" + "; ".join(ratios) + ")"
            ax.text(value, y, text, va="center", ha="left", fontsize=7.5)
            lines: list[tuple[float, str]] = []
            if f.target is not None:
                lines.append((f.target.threshold, _target_text(f.target, _unit(f.unit))))
            lines += [
                (b.target.threshold * b.value, _target_text(b.target, "x baseline"))  # type: ignore[operator]
                for b in f.baselines
                if b.target is not None and finite(b.value)
            ]
            for x, label in lines:
                ax.plot(
                    [x, x],
                    [y - height * 0.55, y + height * 0.55],
                    color=TARGET,
                    linewidth=2.2,
                    solid_capstyle="butt",
                    zorder=5,
                )
                targets.setdefault(label, None)
    ax.set_yticks(range(len(panel.groups)))
    ax.set_yticklabels([_wrap(g.label) for g in panel.groups], fontsize=8)
    ax.invert_yaxis()  # the table's order, top to bottom
    if log:
        ax.set_xscale("log")
        ax.set_xlim(min(values) / 2, top * 5)
    else:
        ax.set_xlim(0, top * 1.6)
        if top >= 1_000:
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    betters = {g.figures[n].better for g in panel.groups for n in panel.names if n in g.figures}
    way = f" ({betters.pop()} is better)" if len(betters) == 1 and None not in betters else ""
    unit = panel.unit or ", ".join(panel.names)
    ax.set_xlabel(f"{unit}{way}{', log scale' if log else ''}", fontsize=9)
    if len(panel.names) == 1:
        what = named(panel.names[0], panel.unit)
    else:
        what = ", ".join(panel.names) + (f" ({panel.unit})" if panel.unit else "")
    title = f"{_wrap(panel.table.title, 110, 2)}\n{what}" if panel.first else what
    ax.set_title(title, fontsize=9.5, loc="left")
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.set_axisbelow(True)
    handles: list[Patch | Line2D] = []
    if k > 1:
        handles += [Patch(color=colours[n], label=n) for n in panel.names]
    if any(g.baseline for g in panel.groups):
        handles.append(Patch(facecolor="white", edgecolor="#555555", hatch="///", label="baseline"))
    if targets:
        label = "target " + ", ".join(targets)
        handles.append(Line2D([], [], color=TARGET, linewidth=2.2, label=label))
    if handles:
        ax.legend(handles=handles, fontsize=7.5, loc="lower right", framealpha=0.85)


def render(result: Result, path: Path) -> bool:
    """Write ``result``'s chart to ``path`` (a PNG); False when it has nothing to chart."""
    chosen = panels(result)
    if not chosen:
        return False
    sizes = [
        1.1 + (0.5 if p.first else 0) + 0.3 * sum(len(g.figures) for g in p.groups) for p in chosen
    ]
    fig = Canvas(figsize=(11, sum(sizes) + 0.6), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(chosen), 1, gridspec_kw={"height_ratios": sizes}, squeeze=False)
    for ax, panel in zip(axes[:, 0], chosen, strict=True):
        colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(panel.names)}
        _draw(ax, panel, colours)
    fig.suptitle(f"bench {result.name}", fontsize=12, fontweight="bold", x=0.01, ha="left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return True
