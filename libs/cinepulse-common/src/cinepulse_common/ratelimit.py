"""Rate limits, shared by the event gateway (events per write key and per user) and the keyed
read services (requests per client or per address: :mod:`cinepulse_common.read_limits`).

A limit is a string such as ``'1000/10 seconds'`` or ``'1200/minute'`` (the ``limits``
library's notation), or ``'unlimited'`` / ``'none'`` to turn it off; an empty value or a limit
of 0 is refused, naming the setting (:func:`parse_rate_limit`). Counting is a sliding window
counter in this process's memory (:class:`RateLimiter`): a service of N replicas lets a
caller through N times a limit. Every counted answer carries ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (seconds until the window frees room); a
refused one is 429 with them and ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from limits.util import WindowStats
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: the values that turn a limit off (compared case-insensitively)
UNLIMITED = frozenset({"unlimited", "none"})
#: the response headers of a counted request
LIMIT_HEADER, REMAINING_HEADER, RESET_HEADER = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)


def parse_rate_limit(
    value: str,
    name: str,
    *,
    unit: str = "request",
    examples: str = "'1200/minute', '20/second'",
) -> RateLimitItem | None:
    """``'1200/minute'`` -> its limit; ``'unlimited'``/``'none'`` -> ``None``; else an error
    naming the setting ``name`` (an empty value is refused: say ``unlimited`` to turn it off).
    ``unit`` is what is counted (requests, events), ``examples`` the limits the message
    suggests."""
    if value.strip().lower() in UNLIMITED:
        return None
    try:
        item = parse(value)
        if item.amount < 1:
            raise ValueError(f"a limit of 0 refuses every {unit}")
    except ValueError as exc:
        raise ValueError(f"{name} {value!r}: {exc} (e.g. {examples} or 'unlimited')") from None
    return item


@dataclass(frozen=True)
class CountedLimit:
    """One limit a request is counted against: the limit, the identifiers of its counter
    (e.g. ``("web",)``: each distinct tuple has a window of its own), the setting it comes
    from and whose it is, both for the messages (``"for client 'web'"``)."""

    item: RateLimitItem
    who: tuple[str, ...]
    setting: str
    whose: str


class RateLimitExceeded(HTTPException):
    """429: a limit has no room left for the request; its headers say when it will."""

    def __init__(self, limit: CountedLimit, headers: dict[str, str]) -> None:
        super().__init__(
            429,
            f"rate limit {limit.item} exceeded {limit.whose}",
            headers={**headers, "Retry-After": headers[RESET_HEADER]},
        )
        self.limit = limit


class RateLimiter:
    """Counters of this process (a sliding window counter per limit and identifiers)."""

    def __init__(self) -> None:
        self.strategy = SlidingWindowCounterRateLimiter(MemoryStorage())

    def count(self, limits: Sequence[CountedLimit], cost: int = 1) -> dict[str, str]:
        """Count ``cost`` against every one of ``limits``. Every limit is tested before any is
        counted: a request one limit refuses spends nothing of the others. Answers the
        ``X-RateLimit-*`` headers of the limit with the least left (none for no limits), or
        raises :class:`RateLimitExceeded` for the first limit without room."""
        for limit in limits:
            if not self.strategy.test(limit.item, *limit.who, cost=cost):
                raise RateLimitExceeded(limit, self.headers(limit))
        answered: dict[str, str] = {}
        for limit in limits:
            self.strategy.hit(limit.item, *limit.who, cost=cost)
            headers = self.headers(limit)
            left = int(headers[REMAINING_HEADER])
            if not answered or left < int(answered[REMAINING_HEADER]):
                answered = headers
        return answered

    def get_window_stats(self, item: RateLimitItem, *who: str) -> WindowStats:
        """The counter of ``item`` for ``who`` as it stands (the ``limits`` strategy's)."""
        return self.strategy.get_window_stats(item, *who)

    def headers(self, limit: CountedLimit) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers of ``limit`` as its counter stands."""
        stats = self.strategy.get_window_stats(limit.item, *limit.who)
        # whole seconds, never 0: a client told "0" would retry at once and be refused again
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return {
            LIMIT_HEADER: str(limit.item.amount),
            REMAINING_HEADER: str(max(0, stats.remaining)),
            RESET_HEADER: str(reset),
        }


# --- answering the headers of a counted request ---------------------------------------------
#: where a FastAPI dependency leaves the headers of its count (``request.state``)
STATE_KEY = "rate_limit_headers"


class RateLimitHeadersMiddleware:
    """Adds the ``X-RateLimit-*`` headers a dependency counted (``request.state`` under
    :data:`STATE_KEY`) to the answer. A dependency cannot set them itself on an operation
    returning its own ``Response`` (FastAPI merges a dependency's headers only into answers
    it builds), and the api's and the recommender's operations all do. A header the answer
    already has (a 429's own) is left as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                counted: dict[str, str] | None = scope.get("state", {}).get(STATE_KEY)
                if counted:
                    raw = list(message.get("headers", []))
                    present = {name.lower() for name, _ in raw}
                    for name, value in counted.items():
                        if name.lower().encode() not in present:
                            raw.append((name.lower().encode(), value.encode()))
                    message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- OpenAPI ---------------------------------------------------------------------------------
#: the headers of a counted answer, as an OpenAPI ``headers`` object
HEADER_DOCS: dict[str, dict[str, Any]] = {
    LIMIT_HEADER: {
        "description": "requests the caller's limit allows per window (absent: no limit)",
        "schema": {"type": "integer"},
    },
    REMAINING_HEADER: {
        "description": "requests left in the current window",
        "schema": {"type": "integer"},
    },
    RESET_HEADER: {
        "description": "seconds until the window has room again",
        "schema": {"type": "integer"},
    },
}
