"""The recommender, an external HTTP service to the explorer: ``GET
{recommender_url}/api/recommendations?user_id=&k=`` answers ``{"items": [{"movie_id",
"title"?, "score"}], "strategy", "model_version"}``. The request carries the explorer's API
key (``X-API-Key``; the recommender reads per-user data only for a known client, and any
user's only for an ``internal`` one). Any failure (down, slow, an error status - a refused
key included -, an answer of another shape) becomes :class:`RecommenderUnavailable`, whose
message the page shows instead of the list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd

COLUMNS = ["rank", "movie_id", "title", "score"]


class RecommenderUnavailable(Exception):
    """No recommendations could be had; the message says why, for the page."""


@dataclass(frozen=True)
class Recommendations:
    #: rank, movie_id, title (None when neither the recommender nor the warehouse knows it),
    #: score; best first
    items: pd.DataFrame
    strategy: str | None
    model_version: str | None


def fetch_recommendations(
    base_url: str,
    user_id: str,
    k: int,
    *,
    timeout_s: float = 2.0,
    api_key: str | None = None,
    key_header: str = "X-API-Key",
    client: httpx.Client | None = None,
) -> Recommendations:
    """``api_key``: sent in ``key_header`` (none: no key)."""
    url = f"{base_url.rstrip('/')}/api/recommendations"
    params: dict[str, str | int] = {"user_id": user_id, "k": k}
    headers = {key_header: api_key} if api_key else {}
    try:
        if client is None:
            response = httpx.get(url, params=params, headers=headers, timeout=timeout_s)
        else:
            response = client.get(url, params=params, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise RecommenderUnavailable(
            f"the recommender at {base_url} did not answer ({type(exc).__name__}: {exc})"
        ) from exc
    if response.status_code != 200:
        raise RecommenderUnavailable(
            f"the recommender answered HTTP {response.status_code}: {_detail(response)}"
        )
    try:
        return parse_recommendations(response.json())
    except (ValueError, TypeError, KeyError) as exc:
        raise RecommenderUnavailable(f"the recommender's answer is not understood ({exc})") from exc


def parse_recommendations(body: Mapping[str, Any]) -> Recommendations:
    """The answer's items as a frame, best first (rank 1); raises on a malformed answer."""
    items = body["items"]
    if not isinstance(items, list):
        raise TypeError("items is not a list")
    rows = [
        (int(item["movie_id"]), item.get("title"), float(item["score"]))
        for item in items
        if isinstance(item, Mapping)
    ]
    if len(rows) != len(items):
        raise TypeError("an item is not an object")
    frame = pd.DataFrame(rows, columns=["movie_id", "title", "score"])
    frame = frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return Recommendations(frame[COLUMNS], body.get("strategy"), body.get("model_version"))


def with_titles(items: pd.DataFrame, titles: Mapping[int, str]) -> pd.DataFrame:
    """Fill the titles the recommender left out from ``titles`` (movie id -> title)."""
    filled = items.copy()
    missing = filled["title"].isna()
    filled.loc[missing, "title"] = filled.loc[missing, "movie_id"].map(titles)
    return filled


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, Mapping) and "detail" in body:
        return str(body["detail"])[:200]
    return str(body)[:200]
