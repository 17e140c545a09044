"""Migrations that freeze a definition of the code's (so that a later change is a migration
of its own): the frozen copy still agrees with the code it was taken from."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cinepulse_common.warehouse.columns import EVENT_COLUMN_TYPES, QUARANTINE_COLUMN_TYPES

VERSIONS = Path(__file__).resolve().parents[2] / "migrations/src/cinepulse_migrations/versions"


def _migration(name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, VERSIONS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_0012s_landing_tables_have_the_columns_spark_writes() -> None:
    landing = dict(_migration("0012_service_roles").LANDING)  # type: ignore[attr-defined]

    def columns(types: tuple[tuple[str, str], ...]) -> str:
        return ", ".join(f"{c} {t}" for c, t in types)

    # a change of these columns needs a new migration (ALTER TABLE) and this test updated
    assert landing["spark_batch_events"] == columns((*EVENT_COLUMN_TYPES, ("is_late", "boolean")))
    assert landing["spark_batch_quarantine"] == columns(QUARANTINE_COLUMN_TYPES)
