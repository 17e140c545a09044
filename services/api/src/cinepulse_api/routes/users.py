"""``/api/user_stats/{user_id}``: one user's activity, private (an ``internal`` client reads any
user, a ``frontend`` client only the user of its token); computed for every request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response

from cinepulse_api.adapters import queries
from cinepulse_api.cache import cached_answer
from cinepulse_api.deps import AccessDep, CachePolicyDep, CallerDep, WarehouseDep
from cinepulse_api.openapi import responses
from cinepulse_api.routes.params import NoNul
from cinepulse_api.schemas import GenreCount, UserStats

router = APIRouter(tags=["users"])

#: the per-user operations (a key, and for a frontend client a user token, in the OpenAPI)
USER_PATHS = ("/api/user_stats/{user_id}",)


def _rating_label(rating: float) -> str:
    return f"{rating:.1f}"


@router.get("/api/user_stats/{user_id}", response_model=UserStats, responses=responses(404, 503))
async def user_stats(
    request: Request,
    user_id: Annotated[str, Path(min_length=1, max_length=128), NoNul],
    credentials: CallerDep,
    access: AccessDep,
    warehouse: WarehouseDep,
    policy: CachePolicyDep,
) -> Response:
    """One user's activity: events by type, watch time, ratings, favourite genres.

    Private: an ``internal`` client reads any user; a ``frontend`` client only the user
    its ``X-User-Token`` was signed for."""
    access.authorize_user(credentials.caller, user_id, credentials.user_token)
    [row] = await warehouse.fetch(queries.USER_STATS, {"user_id": user_id})
    if not row["known"]:
        raise HTTPException(404, f"unknown user {user_id!r} (no events)")
    events = {k: int(n) for k, n in row["events"].items()}
    answer = UserStats(
        user_id=user_id,
        events=events,
        total_events=sum(events.values()),
        watch_seconds=row["watch_seconds"],
        rating_distribution={_rating_label(r["rating"]): int(r["count"]) for r in row["ratings"]},
        favourite_genres=[GenreCount(genre=g["name"], events=g["events"]) for g in row["genres"]],
        last_activity=row["last_activity"],
    )
    return cached_answer(request, answer, policy.private, policy.private_vary)
