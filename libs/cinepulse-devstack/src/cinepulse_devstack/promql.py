"""PromQL expressions of the chart (alert rules, dashboard panels) checked against a live
Prometheus: each must parse and return series.

An alert's expression is a condition (``x > threshold``, ``absent(x)``, ``a and b``): it
correctly returns nothing while the system is healthy. For those, :func:`condition_operands`
takes the comparison, the set operators and ``absent`` away and each remaining operand must
return series. An operand may still be empty when one of its selectors asks for a label
value that has not occurred (``status=~"5.."`` while no request failed); that is accepted only
for a regex matcher, when the metric itself has series carrying that label, and the check
says so with the values seen (an exact value never seen, ``query="event"``, fails: a typo).

No PromQL parser is needed for this: :func:`tokenize` is PromQL's lexer, enough to find the
vector selectors and the top-level operators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![\w.]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][\w:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=(){},@])
    """,
    re.VERBOSE,
)
COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPERATORS = frozenset({"and", "or", "unless"})
#: keywords followed by a parenthesised list of label names
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = SET_OPERATORS | GROUPING | {"bool", "offset", "atan2", "nan", "inf"}
AGGREGATIONS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    }
)
#: functions that answer when their argument has no series: the argument is the operand
ABSENT = frozenset({"absent", "absent_over_time"})


class PromQLSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int
    end: int


def tokenize(expr: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise PromQLSyntaxError(f"cannot read {expr[pos : pos + 20]!r} at {pos}")
        kind = m.lastgroup or "?"
        if kind != "space":
            tokens.append(Token(kind, m.group(), m.start(), m.end()))
        pos = m.end()
    return tokens


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.label}{self.op}{_quote(self.value)}"

    @property
    def needs_label(self) -> bool:
        """Whether a series must carry the label to match (``=`` / ``=~`` of a value that
        an absent label, the empty string, does not satisfy)."""
        if self.op == "=":
            return self.value != ""
        if self.op == "=~":
            return re.fullmatch(self.value, "") is None
        return False


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...] = ()

    def __str__(self) -> str:
        inner = ", ".join(str(m) for m in self.matchers)
        return f"{self.metric}{{{inner}}}" if inner else self.metric


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _closing(tokens: list[Token], i: int) -> int:
    """Index of the bracket closing the one at ``i``."""
    pairs = {"(": ")", "{": "}"}
    opener, closer, depth = tokens[i].text, pairs[tokens[i].text], 0
    for j in range(i, len(tokens)):
        if tokens[j].text == opener and tokens[j].kind == "op":
            depth += 1
        elif tokens[j].text == closer and tokens[j].kind == "op":
            depth -= 1
            if depth == 0:
                return j
    raise PromQLSyntaxError(f"unbalanced {opener!r} at {tokens[i].start}")


def _matchers(tokens: list[Token]) -> tuple[Matcher, ...]:
    out = []
    i = 0
    while i < len(tokens):
        if tokens[i].text == ",":
            i += 1
            continue
        if i + 2 >= len(tokens) or tokens[i + 2].kind != "string":
            raise PromQLSyntaxError(f"bad label matcher at {tokens[i].start}")
        out.append(Matcher(tokens[i].text, tokens[i + 1].text, _unquote(tokens[i + 2].text)))
        i += 3
    return tuple(out)


def vector_selectors(expr: str) -> list[Selector]:
    """Every vector selector (``metric{matchers}``; ranges and offsets dropped), in order."""
    tokens = tokenize(expr)
    out: list[Selector] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if t.kind == "ident":
            word = t.text.lower()
            if t.text in GROUPING and nxt is not None and nxt.text == "(":
                i = _closing(tokens, i + 1) + 1
                continue
            if nxt is not None and nxt.text == "(" and nxt.kind == "op":
                i += 1  # a function or an aggregation
                continue
            if t.text in AGGREGATIONS and nxt is not None and nxt.text in ("by", "without"):
                i += 1
                continue
            if word in KEYWORDS:
                i += 1
                continue
            matchers: tuple[Matcher, ...] = ()
            j = i + 1
            if nxt is not None and nxt.text == "{":
                end = _closing(tokens, i + 1)
                matchers = _matchers(tokens[i + 2 : end])
                j = end + 1
            out.append(Selector(t.text, matchers))
            i = j
            continue
        if t.text == "{" and t.kind == "op":  # a selector without a name: {__name__="..."}
            end = _closing(tokens, i)
            matchers = _matchers(tokens[i + 1 : end])
            names = [m.value for m in matchers if m.label == "__name__" and m.op == "="]
            rest = tuple(m for m in matchers if m.label != "__name__")
            out.append(Selector(names[0] if names else "", rest))
            i = end + 1
            continue
        i += 1
    return out


def absent_selectors(expr: str) -> list[Selector]:
    """The selectors inside ``absent(...)`` / ``absent_over_time(...)``."""
    tokens = tokenize(expr)
    out: list[Selector] = []
    for i, t in enumerate(tokens[:-1]):
        if t.kind == "ident" and t.text in ABSENT and tokens[i + 1].text == "(":
            end = _closing(tokens, i + 1)
            out += vector_selectors(expr[tokens[i + 1].end : tokens[end].start])
    return out


def _strip_absent(expr: str) -> str:
    tokens = tokenize(expr)
    if (
        len(tokens) >= 3
        and tokens[0].kind == "ident"
        and tokens[0].text in ABSENT
        and tokens[1].text == "("
        and _closing(tokens, 1) == len(tokens) - 1
    ):
        return _strip_absent(expr[tokens[2].start : tokens[-1].start].strip())
    if tokens and tokens[0].text == "(" and _closing(tokens, 0) == len(tokens) - 1:
        return _strip_absent(expr[tokens[1].start : tokens[-1].start].strip())
    return expr.strip()


def condition_operands(expr: str) -> list[str]:
    """The operands of an alert's condition: ``expr`` split at its top-level comparisons and
    set operators (``a > 5 and deriv(b) > 0`` gives ``a``, ``deriv(b)``), ``absent(x)``
    unwrapped to ``x``; operands without a vector selector (``5``, ``3 * 3600``) dropped."""
    tokens = tokenize(expr)
    pieces: list[tuple[int, int]] = []
    depth, start, i = 0, 0, 0
    while i < len(tokens):
        t = tokens[i]
        if t.kind == "op" and t.text in "({":
            depth += 1
        elif t.kind == "op" and t.text in ")}":
            depth -= 1
        elif depth == 0 and (
            (t.kind == "op" and t.text in COMPARISONS)
            or (t.kind == "ident" and t.text in SET_OPERATORS)
        ):
            pieces.append((start, t.start))
            i += 1
            # modifiers of the operator: bool, on(...), ignoring(...), group_left(...)
            while i < len(tokens) and tokens[i].text in GROUPING | {"bool"}:
                if i + 1 < len(tokens) and tokens[i + 1].text == "(":
                    i = _closing(tokens, i + 1)
                i += 1
            start = tokens[i].start if i < len(tokens) else len(expr)
            continue
        i += 1
    pieces.append((start, len(expr)))
    operands = [_strip_absent(expr[a:b]) for a, b in pieces]
    return [o for o in operands if vector_selectors(o)]


# --------------------------------------------------------------------------- live checks


@dataclass
class SelectorResult:
    selector: Selector
    #: series matching the selector as written
    matching: int
    #: series of the metric, whatever its labels
    of_metric: int
    #: labels the selector's matchers need that no series of the metric carries
    labels_missing: list[str]
    #: values the metric has now for each label the matchers name (for the report)
    values: dict[str, list[str]]


@dataclass
class ExpressionCheck:
    """One expression's outcome: ``ok`` with ``why`` (what returned series), or not."""

    source: str
    kind: Literal["alert", "record", "panel"]
    expr: str
    error: str = ""
    series: int = 0
    operands: list[tuple[str, int]] = field(default_factory=list)
    selectors: list[SelectorResult] = field(default_factory=list)
    ok: bool = False
    why: str = ""

    def line(self) -> str:
        flat = " ".join(self.expr.split())
        verdict = "ok  " if self.ok else "FAIL"
        return f"{verdict} {self.kind:<6} {self.source}: {self.why}\n       {flat}"


class Prometheus:
    """The HTTP API of a running Prometheus."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant query's result; :class:`PromQLError` with Prometheus' message when it
        does not parse or evaluate."""
        r = self.http.get("/api/v1/query", params={"query": promql})
        body = r.json()
        if body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def metadata(self, metric: str) -> list[dict[str, Any]]:
        """The metric's TYPE and HELP as scraped targets expose them (also a metric family
        that has no sample, e.g. a labelled counter never incremented)."""
        r = self.http.get("/api/v1/metadata", params={"metric": metric})
        r.raise_for_status()
        return list(r.json()["data"].get(metric, []))

    def rules(self) -> list[dict[str, Any]]:
        r = self.http.get("/api/v1/rules")
        r.raise_for_status()
        return [rule for g in r.json()["data"]["groups"] for rule in g["rules"]]

    def reload(self) -> None:
        self.http.post("/-/reload").raise_for_status()

    def close(self) -> None:
        self.http.close()


class PromQLError(RuntimeError):
    pass


def _selector_result(prom: Prometheus, sel: Selector) -> SelectorResult:
    matching = len(prom.query(str(sel))) if sel.metric else 0
    series = prom.query(f"{{__name__={_quote(sel.metric)}}}") if sel.metric else []
    values = {
        m.label: sorted({s["metric"][m.label] for s in series if m.label in s["metric"]})
        for m in sel.matchers
    }
    missing = [m.label for m in sel.matchers if m.needs_label and not values.get(m.label)]
    return SelectorResult(sel, matching, len(series), missing, values)


def _why_absent(prom: Prometheus, metric: str) -> str:
    # a histogram's or (OpenMetrics) a counter's family is named without the suffix
    family = re.sub(r"_(bucket|count|sum|total)$", "", metric)
    meta = prom.metadata(metric) or prom.metadata(family)
    if meta:
        kind = meta[0].get("type", "?")
        return (
            f"no series of {metric}: a scraped target declares it ({kind}) but has no sample "
            "(a labelled metric whose label values are created only when first counted)"
        )
    return f"no series of {metric}: not exported by a scraped target, not pushed, or misspelt"


def check_expression(
    prom: Prometheus, source: str, kind: Literal["alert", "record", "panel"], expr: str
) -> ExpressionCheck:
    """Run ``expr`` (and, for an alert that returns nothing, its operands) against ``prom``.

    * every expression must parse and evaluate;
    * every metric it names must have series carrying the labels its matchers need (else:
      the metric is not exported by a scraped service, not pushed, or misspelt);
    * a panel or recording rule must return series; an alert returns series when it fires,
      else each operand of its condition must, or be empty only because a selector's label
      value has not occurred (reported with the values seen).
    """
    c = ExpressionCheck(source, kind, expr)
    try:
        c.series = len(prom.query(expr))
        c.selectors = [_selector_result(prom, s) for s in vector_selectors(expr)]
    except PromQLError as exc:
        c.error = str(exc)
        c.why = f"does not parse or evaluate: {exc}"
        return c
    absent = sorted({s.selector.metric for s in c.selectors if not s.of_metric})
    if absent:
        c.why = "; ".join(_why_absent(prom, name) for name in absent)
        return c
    unlabelled = [s for s in c.selectors if s.labels_missing]
    if unlabelled:
        c.why = "; ".join(
            f"no series of {s.selector.metric} has label(s) {', '.join(s.labels_missing)}"
            for s in unlabelled
        )
        return c
    missing = [s for s in absent_selectors(expr) if not prom.query(str(s))]
    if missing:
        c.why = f"absent() holds: {missing[0]} matches no series (a label value never seen?)"
        return c
    if c.series:
        c.ok = True
        c.why = f"{c.series} series"
        if kind == "alert":
            c.why += " (its condition holds now: it would fire)"
        return c
    if kind != "alert":
        c.why = "returns no series although every metric it names has series"
        return c
    notes = []
    for operand in condition_operands(expr):
        n = len(prom.query(operand))
        c.operands.append((operand, n))
        if n:
            notes.append(f"{' '.join(operand.split())[:60]}: {n} series")
            continue
        results = [_selector_result(prom, sel) for sel in vector_selectors(operand)]
        unmatched = [s for s in results if not s.matching]
        if not unmatched:
            c.why = (
                f"operand {' '.join(operand.split())!r} returns nothing although each of its "
                "selectors matches series"
            )
            return c
        for s in unmatched:
            seen = "; ".join(f"{k}: {', '.join(v) or '-'}" for k, v in s.values.items())
            unknown = [
                m
                for m in s.selector.matchers
                if m.op == "=" and m.value and m.value not in s.values.get(m.label, [])
            ]
            if unknown:  # an exact value never seen: a typo rather than a healthy state
                c.why = f"{s.selector}: {unknown[0]} matches no series ({seen})"
                return c
            notes.append(
                f"nothing matches {s.selector} yet ({s.of_metric} series of the metric; {seen})"
            )
    c.ok = True
    c.why = "condition false now (healthy); " + "; ".join(notes)
    return c
