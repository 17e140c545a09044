"""The PromQL helpers the live monitoring check uses (cinepulse_devstack.promql)."""

from __future__ import annotations

from typing import Any

import pytest

from cinepulse_devstack.promql import (
    Matcher,
    Prometheus,
    PromQLError,
    Selector,
    check_expression,
    condition_operands,
    vector_selectors,
)


def test_vector_selectors_skip_functions_keywords_and_label_lists() -> None:
    expr = (
        'sum without (instance) (rate(x{a!="", b=~"5.."}[5m] offset 1m)) > bool on(job) '
        "group_left(team) y and histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))"
    )
    assert [str(s) for s in vector_selectors(expr)] == [
        'x{a!="", b=~"5.."}',
        "y",
        "h_bucket",
    ]
    assert vector_selectors('{__name__="up", job="a"}') == [
        Selector("up", (Matcher("job", "=", "a"),))
    ]
    assert vector_selectors("time() - 3 * 3600") == []


def test_condition_operands() -> None:
    assert condition_operands("sum(a) > 1000 and deriv(sum(a)[10m:1m]) > 0") == [
        "sum(a)",
        "deriv(sum(a)[10m:1m])",
    ]
    assert condition_operands('absent(x{q="e"})') == ['x{q="e"}']
    assert condition_operands("time() - max(t) > 3 * 3600") == ["time() - max(t)"]
    # a comparison inside a function or a matcher is not the condition's
    assert condition_operands('sum(rate(x{s!="2"}[5m]) > 1)') == ['sum(rate(x{s!="2"}[5m]) > 1)']


def test_a_matcher_needs_the_label_unless_it_matches_empty() -> None:
    assert Matcher("status", "=~", "5..").needs_label
    assert Matcher("job", "=", "a").needs_label
    assert not Matcher("job", "=~", "a|").needs_label
    assert not Matcher("job", "!=", "a").needs_label


class FakePrometheus(Prometheus):
    def __init__(
        self, answers: dict[str, list[dict[str, Any]]], meta: frozenset[str] = frozenset()
    ) -> None:
        self.answers = answers
        self.meta = meta

    def query(self, promql: str) -> list[dict[str, Any]]:
        if "((" in promql:
            raise PromQLError("bad_data: parse error")
        return self.answers.get(" ".join(promql.split()), [])

    def metadata(self, metric: str) -> list[dict[str, Any]]:
        return [{"type": "counter"}] if metric in self.meta else []


def _series(**labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [0, "1"]}


def test_a_healthy_ratio_alert_is_explained_by_its_error_matcher() -> None:
    expr = 'sum(rate(r{status=~"5.."}[5m])) / sum(rate(r[5m])) > 0.05'
    prom = FakePrometheus({'{__name__="r"}': [_series(status="202")], "r": [_series()]})
    c = check_expression(prom, "a", "alert", expr)
    assert c.ok, c.why
    assert 'nothing matches r{status=~"5.."} yet' in c.why and "status: 202" in c.why


def test_an_empty_operand_whose_selectors_match_fails() -> None:
    expr = "deriv(sum(a)[10m:1m]) > 0"
    prom = FakePrometheus({'{__name__="a"}': [_series()], "a": [_series()]})
    c = check_expression(prom, "a", "alert", expr)
    assert not c.ok and "returns nothing although" in c.why


def test_a_panel_must_return_series_and_a_missing_metric_is_named() -> None:
    prom = FakePrometheus({}, meta=frozenset({"errors_total"}))
    c = check_expression(prom, "p", "panel", "sum(rate(errors_total[5m]))")
    assert not c.ok and "declares it (counter) but has no sample" in c.why
    c = check_expression(prom, "p", "panel", "sum(rate(eror_total[5m]))")
    assert not c.ok and "misspelt" in c.why
    c = check_expression(prom, "p", "panel", "sum((x)")
    assert not c.ok and "does not parse" in c.why


@pytest.mark.parametrize("expr", ["up", "sum by (job) (up)"])
def test_a_panel_with_series_is_ok(expr: str) -> None:
    prom = FakePrometheus({expr: [_series()], '{__name__="up"}': [_series()], "up": [_series()]})
    assert check_expression(prom, "p", "panel", expr).ok


def test_an_exact_label_value_never_seen_is_a_typo_not_a_healthy_state() -> None:
    expr = 'absent(t{query="event"})'
    prom = FakePrometheus(
        {'{__name__="t"}': [_series(query="events")], 'absent(t{query="event"})': [_series()]}
    )
    # absent() of a typo returns a series, as a firing alert does: not taken for one
    c = check_expression(prom, "a", "alert", expr)
    assert not c.ok and 'absent() holds: t{query="event"} matches no series' in c.why
    c = check_expression(prom, "a", "alert", 'max(t{query="event"}) > 1')
    assert not c.ok and 'query="event" matches no series (query: events)' in c.why
