"""A benchmark's result as data, and the report made from it.

A benchmark's ``run(stack)`` returns one :class:`Table` (or a list of them). A table's rows
hold measured :class:`Figure` s, each with its unit and which way is better; a figure can be
compared with the :class:`Baseline` measured in the same run (the ratio is always
figure / baseline, and the figure says whether higher or lower is better) and can carry a
:class:`Target`, on the figure itself or on a ratio (met or MISSED: never hidden). The
markdown table of the human report, the summary line of the benchmark and
``results/bench.json`` are all generated from that data.

The parts: :mod:`.formatting`, :mod:`.tables` (figures, rows, tables), :mod:`.results` (one
benchmark's run), :mod:`.run` (every benchmark's), :mod:`.machine`; this package exports the
names the benchmarks use.
"""

from __future__ import annotations

from bench.report.formatting import SCHEMA, Better, Op, finite, named, verdict
from bench.report.machine import commit, load_average, machine
from bench.report.results import Headline, Result
from bench.report.run import Run
from bench.report.tables import Baseline, Check, Figure, Row, Table, Target

__all__ = [
    "SCHEMA",
    "Baseline",
    "Better",
    "Check",
    "Figure",
    "Headline",
    "Op",
    "Result",
    "Row",
    "Run",
    "Table",
    "Target",
    "commit",
    "finite",
    "load_average",
    "machine",
    "named",
    "verdict",
]
