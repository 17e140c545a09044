from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from cinepulse_common.event_types import EventType
from cinepulse_common.rules import (
    SCHEMA_FILENAME,
    RulesError,
    default_rules_text,
    json_schema,
    load_rules,
    parse_rules,
)


def _rules_dict() -> dict:
    return json.loads(default_rules_text())


def test_packaged_rules_load_and_route_every_event_type() -> None:
    rules = load_rules()
    assert {rules.topic_for(t) for t in EventType} == {
        "user_watch_log",
        "user_rating_log",
        "user_comment_log",
        "user_click_log",
    }
    assert rules.rating.allows(4.5) and not rules.rating.allows(4.3)
    assert not rules.rating.allows(0) and not rules.rating.allows(5.5)


def test_schema_file_is_generated_from_the_models() -> None:
    shipped = json.loads(
        resources.files("cinepulse_common").joinpath(SCHEMA_FILENAME).read_text("utf-8")
    )
    assert shipped == json_schema(), "run `make schemas` and commit the result"


def test_packaged_rules_validate_against_the_json_schema() -> None:
    jsonschema.validate(_rules_dict(), json_schema())


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "transform_rules.json"
    bad.write_text('{"version": 1,\n  "dedup": }')
    with pytest.raises(RulesError, match=r"not valid JSON \(line 2, column 12\)"):
        load_rules(bad)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["rating"].update(step=0), r"rating\.step: Input should be greater than 0"),
        (lambda d: d["rating"].update(min=5, max=1), r"rating: Value error, min must be below max"),
        (lambda d: d["comment"].update(max_length="long"), r"comment\.max_length"),
        (lambda d: d.update(surprise=1), r"surprise: Extra inputs are not permitted"),
        (lambda d: d.pop("time"), r"time: Field required"),
        (lambda d: d["event_types"].pop("click"), r"event_types lacks \['click'\]"),
        (
            lambda d: d["normalisation"]["click_target_aliases"].update(x="nowhere"),
            r"click_target_aliases point to unknown targets",
        ),
    ],
)
def test_malformed_rules_are_refused_naming_the_field(mutate, expected: str) -> None:
    data = _rules_dict()
    mutate(data)
    with pytest.raises(RulesError, match=expected):
        parse_rules(json.dumps(data), "rules.json")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read transform rules"):
        load_rules(tmp_path / "absent.json")
