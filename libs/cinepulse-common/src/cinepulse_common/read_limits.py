"""Rate limits of the keyed read services (the api, the recommender): each request to an
``/api/`` operation counts against its caller's limit before anything is read, so a caller
cannot make the service run one query per distinct parameter (``offset``, ``min_votes``) as
fast as it can send them (OWASP API4, unrestricted resource consumption).

* A caller with an API key is counted by its client id: ``rate_limit.per_client``
  (``CINEPULSE_RATE_LIMIT__PER_CLIENT``, default :data:`DEFAULT_PER_CLIENT`), or its own in
  ``rate_limit.clients`` (``CINEPULSE_RATE_LIMIT__CLIENTS='{"explorer": "unlimited"}'``). A
  client is a key, not a user: a backend calling for all its users spends one budget.
* A caller without a key (public aggregates, or auth disabled), or with an unknown key
  (counted as no key: it spends no client's budget, and the operation's own check decides
  between the public answer and 401), is counted by its address: ``rate_limit.anonymous``
  (default :data:`DEFAULT_ANONYMOUS`).
* ``rate_limit.enabled=false`` counts nothing (benchmarks, local development).

Every counted answer (a cache hit, a 304, a 404 or a 422 alike: the limit is on requests)
carries ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset``; a refused one is 429 with
``Retry-After`` and a detail naming the limit (:mod:`cinepulse_common.ratelimit`). Counts
are per process, so per pod: N replicas let a caller through N times a limit.

A service builds one :class:`ReadLimits` with :func:`install_read_limits` (kept on
``app.state.read_limits``, with the middleware that adds the headers to the operations' own
``Response`` objects) and puts :data:`RATE_LIMITED` first among the dependencies of every
``/api/`` operation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from fastapi import Depends, FastAPI, Request
from limits import RateLimitItem
from pydantic import BaseModel, Field, model_validator

from cinepulse_common.ratelimit import (
    HEADER_DOCS,
    STATE_KEY,
    CountedLimit,
    RateLimiter,
    RateLimitHeadersMiddleware,
    parse_rate_limit,
)

if TYPE_CHECKING:  # access.py imports this module's settings
    from cinepulse_common.access import Access

#: each client's requests per pod: 20 a second on average, far below what the database
#: answers uncached; a client serving many users with one key needs its own (``clients``)
DEFAULT_PER_CLIENT = "1200/minute"
#: each address's requests without a key, per pod: 5 a second, a person browsing many times
#: over; behind a proxy every caller has the proxy's address unless forwarded headers are
#: trusted (see ``anonymous``)
DEFAULT_ANONYMOUS = "300/minute"


class ReadRateLimitSettings(BaseModel):
    """``CINEPULSE_RATE_LIMIT__*``: the keyed read services' request limits."""

    enabled: bool = Field(
        True,
        description="count every /api/ request against its caller's limit (429 when "
        "exceeded); false counts nothing (benchmarks, local development)",
    )
    per_client: str = Field(
        DEFAULT_PER_CLIENT,
        description="each API key's client's requests unless clients names it, e.g. "
        "'1200/minute' or '50/second', or 'unlimited'; counted per pod (N replicas let a "
        "client make N times this)",
    )
    clients: dict[str, str] = Field(
        default_factory=dict,
        description="client id -> its own limit, overriding per_client (JSON), e.g. "
        '{"explorer": "unlimited", "partner": "60/minute"}',
    )
    anonymous: str = Field(
        DEFAULT_ANONYMOUS,
        description="requests without an API key (public aggregates, or auth disabled), "
        "counted per client address, e.g. '300/minute', or 'unlimited'; counted per pod. "
        "Behind a proxy or an ingress the address is the proxy's (every anonymous caller then "
        "shares one budget) unless uvicorn trusts its X-Forwarded-For: set FORWARDED_ALLOW_IPS "
        "to the proxy's addresses (uvicorn's variable; default 127.0.0.1)",
    )

    @model_validator(mode="after")
    def _limits_parse(self) -> Self:
        for name, value in self._named().items():
            parse_rate_limit(value, f"rate_limit.{name}")
        return self

    def _named(self) -> dict[str, str]:
        named = {"per_client": self.per_client, "anonymous": self.anonymous}
        named.update({f"clients[{c!r}]": v for c, v in self.clients.items()})
        return named

    @property
    def active(self) -> bool:
        """Whether any request can be refused (a 429 to document)."""
        named = self._named().items()
        return self.enabled and any(parse_rate_limit(v, n) is not None for n, v in named)


class ReadLimits:
    """The limits of ``settings`` over the callers ``access`` identifies, counted in one
    :class:`~cinepulse_common.ratelimit.RateLimiter`."""

    def __init__(self, settings: ReadRateLimitSettings, access: Access) -> None:
        self.settings = settings
        self.access = access
        self.limiter = RateLimiter()
        self.anonymous = parse_rate_limit(settings.anonymous, "rate_limit.anonymous")
        self._per_client: dict[str, RateLimitItem | None] = {}

    def client_limit(self, client: str) -> CountedLimit | None:
        """``client``'s limit (its own, else ``per_client``); ``None``: not counted."""
        own = client in self.settings.clients
        setting = f"rate_limit.clients[{client!r}]" if own else "rate_limit.per_client"
        if client not in self._per_client:  # parsed once per client (settings are validated)
            value = self.settings.clients[client] if own else self.settings.per_client
            self._per_client[client] = parse_rate_limit(value, setting)
        item = self._per_client[client]
        if item is None:
            return None
        return CountedLimit(item, ("client", client), setting, f"for client {client!r}")

    def address_limit(self, address: str) -> CountedLimit | None:
        """The limit of a caller without a key at ``address``; ``None``: not counted."""
        if self.anonymous is None:
            return None
        return CountedLimit(
            self.anonymous,
            ("address", address),
            "rate_limit.anonymous",
            f"for address {address} (callers without an API key are counted by address)",
        )

    def limit_of(self, request: Request) -> CountedLimit | None:
        """The limit ``request`` counts against: its key's client's, else its address's. An
        unknown key is counted as no key, by address (it spends no client's budget); the
        operation's own check then answers it: 401 where a key is needed, the answer where
        aggregates are public (a stale key must not turn a public page into a 401)."""
        if not self.settings.enabled:
            return None
        access = self.access
        key = request.headers.get(access.key_header)
        if access.enabled and key:
            client = access.keys.client_for(key) if access.keys is not None else None
            if client is not None:
                return self.client_limit(client)
        # the distinct identifier prefixes keep a client named like an address apart from it
        address = request.client.host if request.client is not None else "unknown"
        return self.address_limit(address)

    def count(self, request: Request) -> dict[str, str]:
        """Count ``request`` (429 when its limit is exhausted); the ``X-RateLimit-*``
        headers to answer, none when it is not counted."""
        limit = self.limit_of(request)
        return self.limiter.count([limit]) if limit is not None else {}


async def count_request(request: Request) -> None:
    """The dependency counting a request against its caller's limit: 429 when exhausted,
    else the headers left on ``request.state`` for :class:`RateLimitHeadersMiddleware`."""
    limits: ReadLimits = request.app.state.read_limits
    headers = limits.count(request)
    if headers:
        setattr(request.state, STATE_KEY, headers)


#: the first dependency of every ``/api/`` operation of a keyed read service (before the
#: access checks and the answer caches: a cached answer is a request too)
RATE_LIMITED = Depends(count_request)


def install_read_limits(app: FastAPI, settings: ReadRateLimitSettings, access: Access) -> None:
    """Keep :class:`ReadLimits` on ``app.state.read_limits`` and add the middleware answering
    their headers (the operations take :data:`RATE_LIMITED` themselves)."""
    app.state.read_limits = ReadLimits(settings, access)
    app.add_middleware(RateLimitHeadersMiddleware)


# --- OpenAPI ---------------------------------------------------------------------------------
#: the description of a 429 and an example of its detail
TOO_MANY_REQUESTS = (
    "the caller's rate limit is exhausted (per API key's client, or per address without a "
    "key; the detail names it); retry after Retry-After seconds",
    "rate limit 1200 per 1 minute exceeded for client 'web'",
)


def too_many_requests_response(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI response of a 429 whose body is ``model`` (the service's error message)."""
    description, example = TOO_MANY_REQUESTS
    return {
        "model": model,
        "description": description,
        "headers": {
            **HEADER_DOCS,
            "Retry-After": {
                "description": "seconds to wait before the limit has room again",
                "schema": {"type": "integer"},
            },
        },
        "content": {"application/json": {"example": {"detail": example}}},
    }
