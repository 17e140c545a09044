"""tmdb-fetcher's TMDB client without a network: its credentials and the requests it makes
(HTTP answered by ``httpx.MockTransport`` handlers)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from cinepulse_tmdb_fetcher.client import (
    TmdbClient,
)
from cinepulse_tmdb_fetcher.settings import TmdbSettings
from tests.unit.tmdb.fakes import BASE, OK_BODY, Recorder, call, ok, settings


# --- settings and credentials ----------------------------------------------------------------
def test_bearer_token_is_sent() -> None:
    handler = Recorder(ok())
    call(handler)
    assert handler.requests[0].headers["Authorization"] == "Bearer t"
    assert "api_key" not in handler.requests[0].url.params


def test_api_key_only_is_a_query_parameter_and_no_authorization_header() -> None:
    handler = Recorder(ok())
    call(handler, token=None, api_key="k3y")
    request = handler.requests[0]
    assert request.url.params["api_key"] == "k3y"
    assert "Authorization" not in request.headers


def test_token_is_read_from_token_file_without_the_newline(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("file-token\n", encoding="utf-8")
    s = settings(token=None, token_file=path)
    assert s.credentials() == ("file-token", None)
    handler = Recorder(ok())
    call(handler, token=None, token_file=path)
    assert handler.requests[0].headers["Authorization"] == "Bearer file-token"


def test_api_key_is_read_from_api_key_file(tmp_path: Path) -> None:
    path = tmp_path / "api_key"
    path.write_text("  k3y \n", encoding="utf-8")
    assert settings(token=None, api_key_file=path).credentials() == (None, "k3y")


def test_token_file_wins_over_the_token_value(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-file", encoding="utf-8")
    assert settings(token="inline", token_file=path).credentials()[0] == "from-file"


def test_unreadable_token_file_is_a_value_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-secret"
    s = settings(token=None, token_file=missing)
    with pytest.raises(ValueError, match="no-such-secret") as info:
        s.credentials()
    assert str(missing) in str(info.value)
    with pytest.raises(ValueError, match="no-such-secret"):
        TmdbClient(s, transport=httpx.MockTransport(Recorder(ok())))


def test_no_credential_at_all_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValidationError, match="CINEPULSE_TMDB__TOKEN_FILE"):
        TmdbSettings(base_url=BASE)


def test_secrets_do_not_show_in_repr() -> None:
    assert "s3cr3t" not in repr(settings(token="s3cr3t", api_key="s3cr3t"))


# --- endpoints ---------------------------------------------------------------------------------
def test_movie_asks_for_details_with_keywords_credits_and_language() -> None:
    handler = Recorder(ok())
    assert call(handler, "movie", 550, language="de-DE") == OK_BODY
    request = handler.requests[0]
    assert request.method == "GET"
    assert request.url.host == "tmdb.test"
    assert request.url.path == "/3/movie/550"
    assert request.url.params["append_to_response"] == "keywords,credits"
    assert request.url.params["language"] == "de-DE"
    assert request.headers["Accept"] == "application/json"


def test_base_url_trailing_slash_is_tolerated() -> None:
    handler = Recorder(ok())
    call(handler, base_url=BASE + "/")
    assert handler.requests[0].url.path == "/3/movie/550"


def test_discover_and_changes_parameters() -> None:
    handler = Recorder(ok({"page": 1, "results": []}))
    call(handler, "discover", 3, "2000-01-01", "2000-12-31")
    params = handler.requests[0].url.params
    assert handler.requests[0].url.path == "/3/discover/movie"
    assert params["page"] == "3"
    assert params["primary_release_date.gte"] == "2000-01-01"
    assert params["primary_release_date.lte"] == "2000-12-31"
    call(handler, "changes", "2024-01-01", "2024-01-14", 2)
    params = handler.requests[1].url.params
    assert handler.requests[1].url.path == "/3/movie/changes"
    assert (params["start_date"], params["end_date"], params["page"]) == (
        "2024-01-01",
        "2024-01-14",
        "2",
    )
