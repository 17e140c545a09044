"""A request body read as JSON, strictly: what the gateway validates is what every later
reader of the record will see.

The body is parsed once, by the standard library's :mod:`json`, whose ``object_pairs_hook``
sees every key of every object in order, so a key given twice is known (pydantic's parser,
like most, silently keeps the last copy, and another reader may keep the first). Then:

* :func:`parse_json` refuses, as malformed JSON (field ``body``): bytes that are not UTF-8,
  text that is not JSON, the non-standard ``NaN``/``Infinity`` tokens, nesting deeper than
  the interpreter follows, integers too long to convert;
* :func:`json_problems` finds, in one event, each key repeated in an object and each lone
  surrogate escape (``"\\ud800"``: no Unicode character, not encodable as UTF-8), named by
  the dotted path of the field, as the model errors are.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cinepulse_common.events import EventType
from cinepulse_event_gateway.models import FieldError

_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: the problems named per event at most (a body of repeated keys gets no answer larger
#: than itself)
MAX_PROBLEMS = 10


class MalformedJson(Exception):
    """The body is not (strict) JSON."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.error = FieldError(
            field="body", reason=f"malformed JSON: {reason}", type="json_invalid"
        )


class _Repeating(dict[str, Any]):
    """A JSON object in which some keys appeared more than once (the last copy is kept)."""

    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    repeated: dict[str, None] = {}  # ordered, and a set: linear in the number of keys
    for key, _ in pairs:
        if key in seen:
            repeated[key] = None
        seen.add(key)
    out = _Repeating(obj)
    out.repeated = list(repeated)
    return out


def _constant(name: str) -> Any:
    raise MalformedJson(f"{name} is not a JSON number")


def parse_json(body: bytes) -> Any:
    """The JSON value of ``body``; raises :class:`MalformedJson`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"not UTF-8 (invalid byte at position {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_constant)
    except RecursionError:
        raise MalformedJson("nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of over 4300 digits
        raise MalformedJson(str(exc)) from None


#: where a value sits: (the parent's location, the key or index), None for the event itself;
#: linked, so a deep document costs one small tuple per value, not a path copied per value
_Location = tuple["_Location", str | int] | None


def _field(location: _Location, key: str | int | None = None) -> str:
    parts: list[str] = [] if key is None else [str(key)]
    while location is not None:
        location, part = location
        parts.append(str(part))
    dotted = ".".join(reversed(parts)) or "body"
    # a lone surrogate in a key would make the answer itself unencodable: escaped
    return dotted.encode("utf-8", "backslashreplace").decode("utf-8")


def _surrogate(text: str) -> str | None:
    found = _SURROGATE.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def json_problems(value: Any) -> list[FieldError]:
    """Repeated keys and lone surrogates anywhere in ``value`` (one event), in document
    order, :data:`MAX_PROBLEMS` at most; an event with any is refused as it is, without
    validation."""
    out: list[FieldError] = []
    stack: list[tuple[_Location, Any]] = [(None, value)]
    while stack and len(out) < MAX_PROBLEMS:
        location, node = stack.pop()
        if isinstance(node, str):
            code = _surrogate(node)
            if code is not None:
                reason = f"contains a lone surrogate {code} (not a Unicode character)"
                out.append(FieldError(field=_field(location), reason=reason, type="string_unicode"))
        elif isinstance(node, dict):
            for key in getattr(node, "repeated", ()):
                reason = f"duplicate key {key!r}: a key may appear only once in an object"
                out.append(
                    FieldError(field=_field(location, key), reason=reason, type="duplicate_key")
                )
            children: list[tuple[_Location, Any]] = []
            for key, child in node.items():
                code = _surrogate(key)
                if code is not None:
                    reason = f"key {key!r} contains a lone surrogate {code}"
                    out.append(
                        FieldError(field=_field(location), reason=reason, type="string_unicode")
                    )
                if isinstance(child, str | dict | list):
                    children.append(((location, key), child))
            stack.extend(reversed(children))
        elif isinstance(node, list):
            stack.extend(
                ((location, i), node[i])
                for i in range(len(node) - 1, -1, -1)
                if isinstance(node[i], str | dict | list)
            )
    return out[:MAX_PROBLEMS]


def event_type_label(value: Any) -> str:
    """The event type for the rejection metric: a known ``event_type`` or ``unknown``."""
    kind = value.get("event_type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) and kind in EventType._value2member_map_ else "unknown"
