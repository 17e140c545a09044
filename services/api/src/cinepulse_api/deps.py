"""What a route needs, as typed dependencies: each alias reads one thing the app keeps on
``app.state`` (built by :func:`cinepulse_api.app.create_app`), or the caller's credentials.

All are ``async``: FastAPI would run a plain function in its thread pool."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Depends, Request

from cinepulse_api.adapters import Archiver, Warehouse
from cinepulse_api.cache import Answer, AnswerCache, CachePolicy
from cinepulse_api.settings import ApiSettings
from cinepulse_common.access import Access, Credentials, aggregate_reader, user_credentials


async def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def _warehouse(request: Request) -> Warehouse:
    warehouse: Warehouse = request.app.state.warehouse
    return warehouse


async def _archiver(request: Request) -> Archiver:
    archiver: Archiver = request.app.state.archiver
    return archiver


async def _answer_cache(request: Request) -> AnswerCache[Answer]:
    cache: AnswerCache[Answer] = request.app.state.answer_cache
    return cache


async def _trending_cache(request: Request) -> AnswerCache[Answer]:
    cache: AnswerCache[Answer] = request.app.state.trending_cache
    return cache


async def _cache_policy(request: Request) -> CachePolicy:
    policy: CachePolicy = request.app.state.cache_policy
    return policy


async def _today(request: Request) -> date:
    """The last day of the windows (UTC by default; tests pin it)."""
    today: date = request.app.state.today()
    return today


async def _access(request: Request) -> Access:
    access: Access = request.app.state.access
    return access


SettingsDep = Annotated[ApiSettings, Depends(_settings)]
WarehouseDep = Annotated[Warehouse, Depends(_warehouse)]
ArchiverDep = Annotated[Archiver, Depends(_archiver)]
#: aggregate answers (top movies, a movie, emotion trends)
AnswerCacheDep = Annotated[AnswerCache[Answer], Depends(_answer_cache)]
#: /api/trending's answers (live counters: kept shorter), one per limit at most
TrendingCacheDep = Annotated[AnswerCache[Answer], Depends(_trending_cache)]
CachePolicyDep = Annotated[CachePolicy, Depends(_cache_policy)]
TodayDep = Annotated[date, Depends(_today)]
#: the access rules (:mod:`cinepulse_common.access`)
AccessDep = Annotated[Access, Depends(_access)]
#: a per-user request's caller (401 without a known key) and its user token
CallerDep = Annotated[Credentials, Depends(user_credentials)]
#: an aggregate read: open when aggregates are public, else 401 without a known key (a
#: router's ``dependencies``)
AggregateReader = Depends(aggregate_reader)
