"""The JVM jars the Spark jobs need beyond pyspark: the Kafka source and the PostgreSQL
JDBC driver, resolved from Maven Central with ``mvn`` (docs/architecture.md) into a cache.

``spark.jars.packages`` would resolve them with Ivy at every start, straight from Maven
Central's host; resolving once with Maven and passing ``spark.jars`` works offline after.
"""

from __future__ import annotations

from pathlib import Path

import pyspark

from cinepulse_common.maven import MavenError, copy_dependencies

SPARK_VERSION = pyspark.__version__
POSTGRES_JDBC_VERSION = "42.7.4"
ARTIFACTS = (
    ("org.apache.spark", "spark-sql-kafka-0-10_2.13", SPARK_VERSION),
    ("org.postgresql", "postgresql", POSTGRES_JDBC_VERSION),
)
#: of everything Maven resolves (a large hadoop client too), what Spark needs on its path
NEEDED = (
    "spark-sql-kafka-0-10_2.13",
    "spark-token-provider-kafka-0-10_2.13",
    "kafka-clients",
    "commons-pool2",
    "postgresql",
)

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.cinepulse</groupId>
  <artifactId>spark-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


class JarsError(RuntimeError):
    pass


def default_dir(cache: Path) -> Path:
    return cache / f"spark-jars-{SPARK_VERSION}"


def needed_jars(directory: Path) -> list[Path]:
    jars = [
        p
        for p in sorted(directory.glob("*.jar"))
        if any(p.name.startswith(n + "-") for n in NEEDED)
    ]
    missing = [n for n in NEEDED if not any(j.name.startswith(n + "-") for j in jars)]
    if missing:
        raise JarsError(
            f"Spark jars missing in {directory}: {', '.join(missing)}; run `make setup` "
            "(cinepulse-stack install) or set CINEPULSE_JARS_DIR"
        )
    return jars


def ensure_jars(directory: Path) -> list[Path]:
    """Resolve the jars into ``directory`` once (cached: a marker file says it is complete)."""
    marker = directory / ".complete"
    if not marker.exists():
        directory.mkdir(parents=True, exist_ok=True)
        deps = "\n".join(
            f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
            f"<version>{v}</version></dependency>"
            for g, a, v in ARTIFACTS
        )
        pom = directory / "pom.xml"
        pom.write_text(POM.format(deps=deps))
        try:
            copy_dependencies(pom, directory)
        except MavenError as exc:
            raise JarsError(f"resolving the Spark jars failed: {exc}") from None
        marker.write_text("ok\n")
    return needed_jars(directory)


def main(argv: list[str] | None = None) -> int:
    """``python -m cinepulse_spark_jobs.jars [DIR]``: resolve the jars (make setup runs it)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m cinepulse_spark_jobs.jars")
    parser.add_argument("directory", nargs="?", type=Path, help="default: ~/.cache/cinepulse/...")
    args = parser.parse_args(argv)
    directory = args.directory or default_dir(Path.home() / ".cache" / "cinepulse")
    try:
        jars = ensure_jars(directory)
    except JarsError as exc:
        print(f"spark jars: {exc}", file=sys.stderr)
        return 1
    print(f"spark jars ({len(jars)}) in {directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
