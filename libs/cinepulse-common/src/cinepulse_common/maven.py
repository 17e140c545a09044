"""Fetch JVM jars from Maven Central with ``mvn`` (the Kafka broker locally, Spark's Kafka
connector and JDBC driver): ``dependency:copy-dependencies`` of a ``pom`` into a folder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


class MavenError(RuntimeError):
    """``mvn`` is missing or failed; the message carries the end of its output."""


def copy_dependencies(pom: Path, output_dir: Path) -> None:
    """Resolve the runtime dependencies of ``pom`` (transitively) into ``output_dir``."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MavenError("mvn not found: install Maven (apt-get install maven)")
    output_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={output_dir}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(
            f"  {line}" for line in (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        )
        raise MavenError(
            f"mvn dependency:copy-dependencies failed (exit {proc.returncode}):\n{tail}"
        )
