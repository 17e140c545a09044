"""The documentation holds together: every relative link and ``#anchor`` in README.md,
docs/**/*.md and services/*/README.md resolves, and the README stays an on-ramp (at most 200
lines). Anchors are matched against the target's headings slugged the way GitHub does."""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 200

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
#: [text](target) and ![alt](target), with an optional "title"
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)


def documents() -> list[Path]:
    files = [ROOT / "README.md"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    files += sorted((ROOT / "services").glob("*/README.md"))
    return [f for f in files if f.is_file()]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans blanked."""
    out: list[str] = []
    in_fence = False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            out.append("")
            continue
        out.append("" if in_fence else INLINE_CODE.sub("", line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup and punctuation dropped, lower case, spaces to
    hyphens (letters, digits, ``_`` and ``-`` kept)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").strip().lower()
    kept = []
    for ch in text:
        if ch in " -_" or unicodedata.category(ch)[0] in "LN":
            kept.append("-" if ch == " " else ch)
    return "".join(kept)


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    in_fence = False
    for line in path.read_text("utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        found.update(HTML_ANCHOR.findall(line))
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return frozenset(found)


def links(path: Path) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for number, line in enumerate(prose_lines(path.read_text("utf-8")), start=1):
        out.extend((number, m.group(1)) for m in LINK.finditer(line))
    return out


def broken_links(path: Path) -> list[str]:
    problems = []
    for number, target in links(path):
        if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # http:, https:, mailto: ...: not checked here
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if not resolved.exists():
            problems.append(f"{where}: no such file")
            continue
        if anchor:
            if resolved.is_dir() or resolved.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif unquote(anchor) not in anchors(resolved):
                problems.append(f"{where}: no heading with that anchor in {resolved.name}")
    return problems


def test_the_documents_are_found() -> None:
    names = {str(p.relative_to(ROOT)) for p in documents()}
    assert "README.md" in names
    assert "docs/architecture.md" in names
    assert "services/api/README.md" in names


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_the_readme_is_an_on_ramp() -> None:
    lines = (ROOT / "README.md").read_text("utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move the detail under docs/"
    )


def test_the_readme_starts_with_the_two_commands() -> None:
    """The README's first commands set up and run the demo, then run the tests."""
    text = (ROOT / "README.md").read_text("utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.DOTALL)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert commands[:2] == ["make setup && make demo", "make test"]


def test_every_service_has_a_readme() -> None:
    services = sorted(p for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists())
    assert services
    missing = [p.name for p in services if not (p / "README.md").is_file()]
    assert missing == []


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("The two commands", "the-two-commands"),
        ("The bundled dependencies' images", "the-bundled-dependencies-images"),
        ("On a real control plane (kwok)", "on-a-real-control-plane-kwok"),
        ("`make chart-check`: the checks", "make-chart-check-the-checks"),
        ("One implementation, two node providers", "one-implementation-two-node-providers"),
        ("Data quality: reconciliation", "data-quality-reconciliation"),
        ("snake_case and CAPS", "snake_case-and-caps"),
    ],
)
def test_slugs_follow_github(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_a_broken_link_and_a_wrong_anchor_are_reported(tmp_path: Path) -> None:
    global ROOT
    saved = ROOT
    ROOT = tmp_path
    try:
        (tmp_path / "other.md").write_text("# Title\n\n## A section\n\n## A section\n")
        doc = tmp_path / "doc.md"
        doc.write_text(
            "[ok](other.md#a-section) [dup](other.md#a-section-1) [self](#local)\n\n## Local\n"
            "[gone](missing.md) [bad](other.md#nope) `[code](skipped.md)` [web](https://x.y/z)\n"
            "```\n[fenced](also-skipped.md)\n```\n"
        )
        problems = broken_links(doc)
    finally:
        ROOT = saved
    assert problems == [
        "doc.md:4: missing.md: no such file",
        "doc.md:4: other.md#nope: no heading with that anchor in other.md",
    ]
