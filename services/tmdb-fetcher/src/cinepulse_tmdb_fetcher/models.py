"""TMDB's movie details (``/3/movie/{id}?append_to_response=keywords,credits``), read
tolerantly, and the normalised movie Cinepulse publishes (topic ``movie``, ``stg_movies``).

TMDB sends ``null`` for many fields: null lists are *repaired* (empty lists, counted) and
an unknown release date (``""``, TMDB's normal answer) becomes ``None``. A body without a usable ``id`` or title, or with wrong
types, is *malformed*: counted and skipped, never a crash. Unknown extra fields are ignored.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class Named(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    name: str


class Company(Named):
    origin_country: str | None = None


class CastMember(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    name: str
    character: str | None = None
    order: int | None = None


class Movie(BaseModel):
    """The normalised movie (the ``movie`` topic's record)."""

    model_config = ConfigDict(extra="forbid")
    id: int = Field(gt=0)
    title: str
    original_title: str | None = None
    original_language: str | None = None
    overview: str | None = None
    tagline: str | None = None
    status: str | None = None
    release_date: date | None = None
    runtime: int | None = None
    budget: int | None = None
    revenue: int | None = None
    popularity: float | None = None
    vote_average: float | None = None
    vote_count: int | None = None
    adult: bool = False
    imdb_id: str | None = None
    genres: list[Named] = []
    keywords: list[Named] = []
    production_companies: list[Company] = []
    cast: list[CastMember] = Field(default_factory=list, description="top billed, at most 20")

    def content_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class _Details(BaseModel):
    """What we read of a details body; everything but id and title may be null."""

    model_config = ConfigDict(extra="ignore")
    id: int
    title: str | None = None
    original_title: str | None = None
    original_language: str | None = None
    overview: str | None = None
    tagline: str | None = None
    status: str | None = None
    release_date: str | None = None
    runtime: int | None = None
    budget: int | None = None
    revenue: int | None = None
    popularity: float | None = None
    vote_average: float | None = None
    vote_count: int | None = None
    adult: bool | None = None
    imdb_id: str | None = None
    genres: list[Named] | None = None
    keywords: dict[str, Any] | None = None
    production_companies: list[Company] | None = None
    credits: dict[str, Any] | None = None

    @field_validator("release_date")
    @classmethod
    def _date_or_none(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        date.fromisoformat(v)  # a wrong date is malformed
        return v


class Malformed(ValueError):
    """The body cannot be a movie; the reason names the field."""


def normalise(body: dict[str, Any]) -> tuple[Movie, list[str]]:
    """``(movie, repairs)``; raises :class:`Malformed`. ``repairs`` names the fields that
    were null or empty and were replaced by a default."""
    try:
        d = _Details.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise Malformed(f"{field}: {err['msg']}") from None
    repairs = [
        name
        for name in ("genres", "keywords", "production_companies", "credits")
        if body.get(name) is None
    ]
    title = d.title or d.original_title
    if not title:
        raise Malformed("title: missing (and no original_title)")
    if not d.title:
        repairs.append("title")
    keywords_raw = (d.keywords or {}).get("keywords") or []
    cast_raw = (d.credits or {}).get("cast") or []
    if not isinstance(keywords_raw, list):
        raise Malformed(f"keywords.keywords: expected a list, got {type(keywords_raw).__name__}")
    if not isinstance(cast_raw, list):
        raise Malformed(f"credits.cast: expected a list, got {type(cast_raw).__name__}")
    try:
        keywords = [Named.model_validate(k) for k in keywords_raw]
        cast = [CastMember.model_validate(c) for c in cast_raw[:20]]
    except ValidationError as exc:
        raise Malformed(f"keywords/credits: {exc.errors(include_url=False)[0]['msg']}") from None
    try:
        movie = _build(d, title, keywords, cast)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise Malformed(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None
    return movie, repairs


def _build(d: _Details, title: str, keywords: list[Named], cast: list[CastMember]) -> Movie:
    return Movie(
        id=d.id,
        title=title,
        original_title=d.original_title,
        original_language=d.original_language,
        overview=d.overview or None,
        tagline=d.tagline or None,
        status=d.status,
        release_date=date.fromisoformat(d.release_date) if d.release_date else None,
        runtime=d.runtime or None,
        budget=d.budget,
        revenue=d.revenue,
        popularity=d.popularity,
        vote_average=d.vote_average,
        vote_count=d.vote_count,
        adult=bool(d.adult),
        imdb_id=d.imdb_id or None,
        genres=d.genres or [],
        keywords=keywords,
        production_companies=d.production_companies or [],
        cast=cast,
    )
