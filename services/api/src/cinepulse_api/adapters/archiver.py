"""The archiver, as /api/trending sees it: its live counters (``GET /counters/trending``) over
one HTTP client opened in the app's lifespan."""

from __future__ import annotations

import httpx
from fastapi import HTTPException
from pydantic import BaseModel, ValidationError

from cinepulse_common.logging import get_logger

log = get_logger(__name__)

#: Retry-After of a 503 from /api/trending (seconds)
TRENDING_RETRY_AFTER_S = 5


class ArchiverCount(BaseModel):
    movie_id: int
    events: int


class ArchiverTrending(BaseModel):
    """What the archiver's ``/counters/trending`` answers (other fields ignored)."""

    minutes: int
    movies: list[ArchiverCount]


class Archiver:
    """The archiver's client: ``url`` and a ``timeout_s`` deadline per request;
    ``transport`` replaces the network (tests)."""

    def __init__(
        self, url: str, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.transport = transport
        self.client: httpx.AsyncClient | None = None

    def open(self) -> httpx.AsyncClient:
        """The client (an async context manager: the lifespan closes it, then :meth:`closed`)."""
        self.client = httpx.AsyncClient(
            base_url=self.url, timeout=self.timeout_s, transport=self.transport
        )
        return self.client

    def closed(self) -> None:
        self.client = None

    async def trending(self, limit: int) -> ArchiverTrending:
        """The archiver's live counters; HTTPException 503 (down, slow, failing) or 502
        (an answer that is not the expected JSON)."""
        unavailable = {"Retry-After": str(TRENDING_RETRY_AFTER_S)}
        if self.client is None:  # only outside the lifespan
            raise HTTPException(503, "the archiver client is not open", headers=unavailable)
        try:
            r = await self.client.get("/counters/trending", params={"limit": limit})
        except httpx.HTTPError as exc:  # a timeout is one too; it gets its own reason
            if isinstance(exc, httpx.TimeoutException):
                reason = f"did not answer within {self.timeout_s:g}s"
            else:
                reason = f"cannot be reached ({type(exc).__name__})"
            log.warning("archiver unavailable", url=self.url, reason=reason, error=repr(exc))
            raise HTTPException(
                503, f"trending is unavailable: the archiver {reason}", headers=unavailable
            ) from exc
        if r.status_code >= 500:
            log.warning("archiver failed", status=r.status_code)
            raise HTTPException(
                503,
                f"trending is unavailable: the archiver answered {r.status_code}",
                headers=unavailable,
            )
        if r.status_code != 200:
            log.error("archiver refused the request", status=r.status_code, body=r.text[:200])
            raise HTTPException(502, f"the archiver answered {r.status_code}")
        try:
            return ArchiverTrending.model_validate_json(r.content)
        except ValidationError as exc:
            log.error("unexpected archiver answer", body=r.text[:200])
            raise HTTPException(502, "the archiver's answer is not the expected JSON") from exc
