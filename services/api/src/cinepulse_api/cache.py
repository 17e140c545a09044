"""The api's answer cache: ETags, and aggregate answers kept a few seconds under a key made of
what the request means, not how it was spelled.

Key (:func:`answer_key`): the endpoint and its parameters *after* FastAPI has validated them
(a value out of its range is a 422 before any key is made, so it never reaches the cache or
the database), with their defaults filled in, by name (so the order of the query string does
not matter) and as parsed values (``offset=0``, ``offset=00`` and no ``offset`` are the same
``0``). Query parameters an endpoint does not declare are ignored by FastAPI and are no part of
any key. A genre is compared case-insensitively by the warehouse (``lower(name) =
lower(%s)``): its key folds ASCII letters only (:func:`fold_name`), which PostgreSQL folds
alike (a Turkish collation aside), so two spellings share an entry only when it matches them
alike; the answer still echoes the caller's spelling (:meth:`Answer.echoing`, no query).

Size: each cache is a :class:`cachetools.TTLCache`: at most ``entries`` answers (the least
recently used go first) kept ``ttl_s`` seconds each. Requests that miss the same key at the
same time share one computation; a failure (404, 503, ...) is never kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import string
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cachetools import TTLCache
from fastapi import Request, Response
from pydantic import BaseModel

Key = tuple[Hashable, ...]
V = TypeVar("V")

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def etag_of(body: bytes) -> str:
    """A strong validator: the same bytes, the same tag."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: ``*`` or any listed tag, compared weakly (``W/`` ignored)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(c.strip().removeprefix("W/") == etag for c in if_none_match.split(","))


@dataclass(frozen=True)
class Encoded:
    """An answer's JSON body and its ETag."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, model: BaseModel) -> Encoded:
        body = model.__pydantic_serializer__.to_json(model)
        return cls(body, etag_of(body))


@dataclass(frozen=True)
class Answer:
    """A kept answer: its encoding, the values of the parameters it echoes (``genre``) and
    its model class, to encode it again for another spelling of them. No model is kept: an
    entry weighs about its body."""

    encoded: Encoded
    echoes: tuple[tuple[str, object], ...]
    model_type: type[BaseModel]

    @classmethod
    def of(cls, model: BaseModel, *echoed: str) -> Answer:
        """``model`` encoded; ``echoed`` names the fields that repeat a request's parameter
        as it was spelled."""
        echoes = tuple((name, getattr(model, name)) for name in echoed)
        return cls(Encoded.of(model), echoes, type(model))

    def echoing(self, **spelled: object) -> Encoded:
        """The body for a request that spelled the echoed parameters as ``spelled``
        (``genre="drama"`` for an answer computed for ``Drama``): the kept encoding when
        they are the same, otherwise the kept body with them (parsed and encoded again,
        no query)."""
        if all(spelled.get(name, value) == value for name, value in self.echoes):
            return self.encoded
        model = self.model_type.model_validate_json(self.encoded.body)
        return Encoded.of(model.model_copy(update=spelled))


def fold_name(name: str | None) -> str | None:
    """A name (a genre) as a key: ASCII letters lower-cased, nothing else changed.

    The warehouse matches names with ``lower()``, which folds ASCII letters alike under
    every collation but a Turkish one (where ``I`` becomes a dotless i); the stacks' clusters are
    ``--no-locale``, where it folds exactly those. So names that fold alike here select the
    same rows."""
    return None if name is None else name.translate(_ASCII_LOWER)


def answer_key(endpoint: str, /, **params: Hashable) -> Key:
    """The cache key of an answer: ``endpoint`` and its validated parameters (defaults
    filled in by FastAPI) sorted by name."""
    return (endpoint, *sorted(params.items()))


class AnswerCache(Generic[V]):
    """Answers kept ``ttl_s`` seconds (0: never kept), at most ``entries`` of them (LRU):
    a :class:`cachetools.TTLCache` on ``clock``, and one computation per missed key."""

    def __init__(
        self, ttl_s: float, entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.entries = entries
        self._items: TTLCache[Key, V] = TTLCache(maxsize=entries, ttl=ttl_s, timer=clock)
        self._pending: dict[Key, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        """Entries held, expired ones not yet dropped included (never above ``entries``)."""
        return len(self._items)

    def get(self, key: Key) -> V | None:
        return self._items.get(key)

    async def get_or_compute(self, key: Key, compute: Callable[[], Awaitable[V]]) -> V:
        """The kept answer, or ``compute()``'s (kept); requests that miss the same key at
        the same time share one computation instead of each running the query."""
        found = self.get(key)
        if found is not None:
            return found
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        task = asyncio.ensure_future(compute())
        self._pending[key] = task
        try:
            return self.put(key, await asyncio.shield(task))
        finally:
            self._pending.pop(key, None)

    def put(self, key: Key, value: V) -> V:
        if self.ttl_s > 0:
            self._items[key] = value
        return value


def cached_answer(
    request: Request, answer: BaseModel | Encoded, cache_control: str, vary: str | None = None
) -> Response:
    """The answer as JSON with ``ETag`` and ``Cache-Control``; 304 without a body when the
    request's ``If-None-Match`` holds the tag."""
    encoded = answer if isinstance(answer, Encoded) else Encoded.of(answer)
    headers = {"ETag": encoded.etag, "Cache-Control": cache_control}
    if vary:
        headers["Vary"] = vary
    if etag_matches(request.headers.get("if-none-match"), encoded.etag):
        return Response(status_code=304, headers=headers)
    return Response(encoded.body, media_type="application/json", headers=headers)


#: Cache-Control max-age of /api/trending (live counters: short)
TRENDING_MAX_AGE_S = 5


@dataclass(frozen=True)
class CachePolicy:
    """The ``Cache-Control`` of each kind of answer, and the ``Vary`` of per-user ones."""

    aggregate: str
    trending: str
    private: str
    private_vary: str

    @classmethod
    def of(cls, max_age_s: int, *, shared: bool, key_header: str, token_header: str) -> CachePolicy:
        """Aggregates are the same for everyone (``shared``, ``public``); when they need a key,
        no shared cache keeps them (``private``). Per-user answers vary with the credentials."""
        scope = "public" if shared else "private"
        return cls(
            aggregate=f"{scope}, max-age={max_age_s}",
            trending=f"{scope}, max-age={TRENDING_MAX_AGE_S}",
            private=f"private, max-age={max_age_s}",
            private_vary=f"{key_header}, {token_header}",
        )
