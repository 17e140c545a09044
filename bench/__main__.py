"""``make bench``: run every benchmark against the real local stack, write one report.

Each benchmark module exposes ``run(stack) -> Table``; figures and their baselines are
measured side by side in the same run, and reported as ratios (machines here are noisy).
The report is ``results/bench.md``.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.report import Table
from cinepulse_devstack import Stack

BENCHMARKS = [
    "bench.staging_load",
    "bench.gateway",
    "bench.tmdb_fetch",
    "bench.emotion",
    "bench.spark_stream",
    "bench.fallback",
    "bench.api",
    "bench.recommender",
]


def machine() -> str:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.node()}: {os.cpu_count()} cores, {mem_gib:.0f} GiB, "
        f"{platform.platform()}, Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m bench [NAME...]``: every benchmark, or those whose module name contains
    one of the NAMEs (``python -m bench gateway``)."""
    wanted = sys.argv[1:] if argv is None else argv
    chosen = [b for b in BENCHMARKS if not wanted or any(w in b for w in wanted)]
    if not chosen:
        print(f"no benchmark matches {wanted}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    stack = Stack()
    started = stack.up()
    out = Path("results")
    out.mkdir(exist_ok=True)
    tables: list[Table] = []
    try:
        for name in chosen:
            t0 = time.monotonic()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            tables.append(importlib.import_module(name).run(stack))
            print(f"[bench] {name} done in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    finally:
        if started:
            stack.down(started)
    lines = [f"# Cinepulse benchmarks\n\n{datetime.now(UTC):%Y-%m-%d %H:%M UTC} on {machine()}\n"]
    lines += [t.markdown() for t in tables]
    report = "\n".join(lines)
    (out / "bench.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
