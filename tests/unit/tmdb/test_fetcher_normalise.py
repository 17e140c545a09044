"""tmdb-fetcher's normalisation of a movie, on TMDB's own recorded ``/3/movie/{movie_id}``
example (Fight Club) from the shared OpenAPI description."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from cinepulse_tmdb_fetcher.models import Malformed, Movie, normalise


# --- normalise ---------------------------------------------------------------------------------
def test_normalise_the_recorded_fight_club(body: dict[str, Any]) -> None:
    movie, repairs = normalise(body)
    assert movie.id == 550
    assert movie.title == "Fight Club"
    assert movie.original_title == body["original_title"]
    assert movie.release_date == date.fromisoformat(body["release_date"])
    assert movie.runtime == body["runtime"]
    assert movie.imdb_id == body["imdb_id"]
    assert [(g.id, g.name) for g in movie.genres] == [(g["id"], g["name"]) for g in body["genres"]]
    assert [c.id for c in movie.production_companies] == [
        c["id"] for c in body["production_companies"]
    ]
    assert (
        movie.production_companies[0].origin_country
        == (body["production_companies"][0]["origin_country"])
    )
    # the recorded example has no append_to_response parts
    assert movie.keywords == [] and movie.cast == []
    assert set(repairs) == {"keywords", "credits"}


def test_normalise_reads_append_to_response_parts(body: dict[str, Any]) -> None:
    body["keywords"] = {"keywords": [{"id": 1, "name": "x"}]}
    body["credits"] = {"cast": [{"id": 2, "name": "A", "character": "B", "order": 0}], "crew": []}
    movie, repairs = normalise(body)
    assert [(k.id, k.name) for k in movie.keywords] == [(1, "x")]
    assert [(c.id, c.name, c.character, c.order) for c in movie.cast] == [(2, "A", "B", 0)]
    assert repairs == []


def test_normalise_repairs_nulls(body: dict[str, Any]) -> None:
    body.update(
        genres=None,
        production_companies=None,
        keywords=None,
        credits=None,
        runtime=None,
        release_date="",
    )
    movie, repairs = normalise(body)
    assert movie.genres == []
    assert movie.production_companies == []
    assert movie.keywords == []
    assert movie.cast == []
    assert movie.runtime is None
    assert movie.release_date is None
    assert {"genres", "production_companies", "keywords", "credits"} <= set(repairs)


def test_normalise_takes_the_original_title_when_title_is_null(body: dict[str, Any]) -> None:
    body["title"] = None
    body["original_title"] = "Fight Club (original)"
    movie, repairs = normalise(body)
    assert movie.title == "Fight Club (original)"
    assert "title" in repairs


def test_normalise_minimal_body_gets_defaults() -> None:
    movie, repairs = normalise({"id": 7, "title": "Seven"})
    assert movie == Movie(id=7, title="Seven")
    assert set(repairs) == {"genres", "keywords", "production_companies", "credits"}


def test_normalise_missing_id_is_malformed_naming_id(body: dict[str, Any]) -> None:
    del body["id"]
    with pytest.raises(Malformed, match=r"^id\b"):
        normalise(body)


@pytest.mark.parametrize("bad_id", ["abc", None, [550], 0, -3])
def test_normalise_unusable_id_is_malformed(body: dict[str, Any], bad_id: Any) -> None:
    body["id"] = bad_id
    with pytest.raises(Malformed, match="id"):
        normalise(body)


def test_normalise_without_any_title_is_malformed(body: dict[str, Any]) -> None:
    del body["title"]
    del body["original_title"]
    with pytest.raises(Malformed, match="title"):
        normalise(body)


def test_normalise_bad_release_date_is_malformed(body: dict[str, Any]) -> None:
    body["release_date"] = "1999-13-45"
    with pytest.raises(Malformed, match="release_date"):
        normalise(body)


@pytest.mark.parametrize(
    ("field", "value"),
    [("genres", "Drama"), ("runtime", "long"), ("keywords", [1, 2]), ("vote_count", "many")],
)
def test_normalise_wrong_types_are_malformed(body: dict[str, Any], field: str, value: Any) -> None:
    body[field] = value
    with pytest.raises(Malformed, match=field):
        normalise(body)


def test_normalise_bad_keyword_entry_is_malformed(body: dict[str, Any]) -> None:
    body["keywords"] = {"keywords": [{"id": "x"}]}
    with pytest.raises(Malformed, match="keywords"):
        normalise(body)


@pytest.mark.parametrize(
    ("field", "value"),
    [("credits", {"cast": {"id": 2}}), ("credits", {"cast": 5}), ("keywords", {"keywords": 5})],
)
def test_normalise_non_list_append_parts_are_malformed(
    body: dict[str, Any], field: str, value: Any
) -> None:
    body[field] = value
    with pytest.raises(Malformed):
        normalise(body)


def test_normalise_ignores_unknown_fields(body: dict[str, Any]) -> None:
    body["something_new"] = {"nested": [1, 2]}
    body["genres"][0]["extra"] = "ignored"
    movie, _ = normalise(body)
    assert "something_new" not in movie.model_dump()
    assert movie.model_dump()["genres"][0] == {"id": body["genres"][0]["id"], "name": "Drama"}


def test_normalise_keeps_the_top_20_cast(body: dict[str, Any]) -> None:
    body["credits"] = {
        "cast": [{"id": i, "name": f"Actor {i}", "order": i} for i in range(1, 31)],
        "crew": [],
    }
    movie, _ = normalise(body)
    assert len(movie.cast) == 20
    assert [c.id for c in movie.cast] == list(range(1, 21))


def test_movie_forbids_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        Movie(id=1, title="x", homepage="http://x")  # type: ignore[call-arg]


def test_content_hash_is_stable_and_follows_content(body: dict[str, Any]) -> None:
    first, _ = normalise(body)
    second, _ = normalise(copy.deepcopy(body) | {"unknown_extra": 1})
    assert first.content_hash() == second.content_hash()
    assert len(first.content_hash()) == 64
    changed, _ = normalise(body | {"title": "Fight Club 2"})
    assert changed.content_hash() != first.content_hash()
