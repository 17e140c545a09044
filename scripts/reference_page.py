"""What the generated reference pages (scripts/settings_reference.py,
scripts/metrics_reference.py) share: write the page, or with ``--check`` exit 1 when the
committed page differs from what the code gives."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(
    output: Path, render: Callable[[], str], script: str, doc: str, argv: list[str] | None
) -> int:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = output.read_text("utf-8") if output.exists() else ""
        if current != text:
            print(f"{output.relative_to(ROOT)} is stale: run {Path(script).relative_to(ROOT)}")
            return 1
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, "utf-8")
    print(f"wrote {output.relative_to(ROOT)}")
    return 0
