"""Write docs/reference/settings.md from the services' pydantic settings classes.

    uv run --frozen --all-packages python scripts/settings_reference.py          # rewrite it
    uv run --frozen --all-packages python scripts/settings_reference.py --check  # exit 1 if stale

Every variable a settings class reads, with its type, default and description, one table per
service (nested blocks flattened with ``__``, as the services read them). The unit test
``tests/unit/test_settings_reference.py`` fails when the file is not current.
"""

from __future__ import annotations

import importlib
import sys
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # reference_page, beside this script
import reference_page  # noqa: E402

OUTPUT = ROOT / "docs" / "reference" / "settings.md"

#: (heading, where the code lives, "module:Class"); the order of the document
CLASSES: tuple[tuple[str, str, str], ...] = (
    ("Every service", "libs/cinepulse-common", "cinepulse_common.settings:CinepulseSettings"),
    (
        "Event gateway",
        "services/event-gateway",
        "cinepulse_event_gateway.settings:EventGatewaySettings",
    ),
    ("Archiver", "services/archiver", "cinepulse_archiver.settings:ArchiverSettings"),
    (
        "TMDB fetcher",
        "services/tmdb-fetcher",
        "cinepulse_tmdb_fetcher.settings:TmdbFetcherSettings",
    ),
    ("Spark jobs", "services/spark-jobs", "cinepulse_spark_jobs.settings:SparkJobsSettings"),
    (
        "Pandas fallback",
        "services/pandas-fallback",
        "cinepulse_pandas_fallback.settings:PandasFallbackSettings",
    ),
    ("Serving API", "services/api", "cinepulse_api.settings:ApiSettings"),
    ("Recommender", "services/recommender", "cinepulse_recommender.settings:RecommenderSettings"),
    ("Explorer", "services/explorer", "cinepulse_explorer.settings:ExplorerSettings"),
    ("Data quality", "services/quality", "cinepulse_quality.settings:QualitySettings"),
    ("Transform rules", "libs/cinepulse-common", "cinepulse_common.rules:RulesSettings"),
    ("Emotion classifier", "libs/cinepulse-emotion", "cinepulse_emotion.model:EmotionSettings"),
    ("Local stack", "libs/cinepulse-devstack", "cinepulse_devstack.config:StackSettings"),
)

#: the base class's own fields are listed once, under "Every service"
BASE = "cinepulse_common.settings:CinepulseSettings"


def load(ref: str) -> type[BaseModel]:
    module, name = ref.split(":")
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type) and issubclass(cls, BaseModel), ref
    return cls


def type_name(annotation: Any) -> str:
    """A short, stable spelling of a field's type."""
    if annotation is None or annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{args}]" if args else base
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            made = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
        # plain containers are stable; anything else (paths of this machine) is not shown
        if isinstance(made, dict | list | tuple | set | frozenset) and all(
            isinstance(v, str | int | float | bool) for v in made
        ):
            return f"`{made!r}`".replace("|", "\\|")
        return "(computed)"
    if field.default is PydanticUndefined:
        return "**required**"
    value = field.default
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, BaseModel):
        return "(block)"
    if isinstance(value, Path):
        value = str(value)
    text = repr(value)
    return f"`{text}`".replace("|", "\\|")


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a nested block (``X`` or ``X | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(models) == 1:
            return nested_model(models[0])
    return None


def rows(model: type[BaseModel], prefix: str, skip: set[str]) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        variable = f"{prefix}{(field.alias or name).upper()}"
        block = nested_model(field.annotation)
        if block is not None:
            out.extend(rows(block, f"{variable}__", set()))
            continue
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        out.append(
            (
                f"`{variable}`",
                f"`{type_name(field.annotation)}`".replace("|", "\\|"),
                default_text(field),
                description,
            )
        )
    return out


def render() -> str:
    base_fields = set(load(BASE).model_fields)
    lines = [
        "# Settings reference",
        "",
        "<!-- generated by scripts/settings_reference.py from the settings classes: do not edit -->",
        "",
        "Each service reads its settings from the environment (a pydantic-settings class built on",
        "`cinepulse_common.settings.CinepulseSettings`): variables are `CINEPULSE_*`, nested",
        "blocks use `__`; a **required** value that is missing stops the service at start with a",
        "message naming the variable. The variables of [Every service](#every-service) apply to",
        "each service below. Regenerate this page with",
        "`uv run --frozen --all-packages python scripts/settings_reference.py`;",
        "`tests/unit/test_settings_reference.py` fails when it is stale.",
        "",
    ]
    for heading, where, ref in CLASSES:
        cls = load(ref)
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        skip = base_fields if ref != BASE and issubclass(cls, load(BASE)) else set()
        lines += [f"## {heading}", "", f"`{ref.replace(':', '.')}` ({where})", ""]
        lines += ["| variable | type | default | description |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {v} | {t} | {d} | {desc} |".replace(" |  |", " | |")
            for v, t, d, desc in rows(cls, prefix, skip)
        ]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return reference_page.main(OUTPUT, render, __file__, __doc__ or "", argv)


if __name__ == "__main__":
    sys.exit(main())
