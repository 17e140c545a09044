"""tmdb-fetcher's TMDB client, normalisation, settings and command line, without a network.

HTTP is answered by ``httpx.MockTransport`` handlers; the realistic body is TMDB's own
recorded ``/3/movie/{movie_id}`` example (Fight Club) from the shared OpenAPI description.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cinepulse_devstack.tmdb_offline import DEFAULT_OPENAPI
from cinepulse_tmdb_fetcher import metrics
from cinepulse_tmdb_fetcher.__main__ import (
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_SINK,
    EXIT_UNAVAILABLE,
    parse_args,
    summary,
)
from cinepulse_tmdb_fetcher.client import (
    TmdbAuthError,
    TmdbClient,
    TmdbError,
    TmdbNotFound,
    TmdbUnavailable,
    _retry_after,
)
from cinepulse_tmdb_fetcher.models import Malformed, Movie, normalise
from cinepulse_tmdb_fetcher.pipeline import Counts
from cinepulse_tmdb_fetcher.settings import TmdbSettings

BASE = "http://tmdb.test"
OK_BODY = {"id": 550, "title": "Fight Club"}

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def settings(**overrides: Any) -> TmdbSettings:
    values: dict[str, Any] = {
        "base_url": BASE,
        "token": "t",
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.01,
        "rate_per_s": 1000,
        "max_retries": 3,
    }
    values.update(overrides)
    return TmdbSettings(**values)


class Recorder:
    """A MockTransport handler answering from a script; the last answer repeats."""

    def __init__(self, *answers: httpx.Response | type[Exception]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, type):
            raise answer("scripted failure", request=request)
        return answer

    @property
    def calls(self) -> int:
        return len(self.requests)


def call(handler: Handler, fn: str = "movie", *args: Any, **overrides: Any) -> Any:
    """Run one client call in a fresh event loop; ``fn`` is a TmdbClient method name."""

    async def go() -> Any:
        async with TmdbClient(settings(**overrides), transport=httpx.MockTransport(handler)) as c:
            return await getattr(c, fn)(*(args or (550,)))

    return asyncio.run(go())


def retries(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value("cinepulse_tmdb_retries_total", {"reason": reason})
    return value or 0.0


def ok(body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.Response(200, json=OK_BODY if body is None else body, **kwargs)


@pytest.fixture(scope="module")
def fight_club() -> dict[str, Any]:
    if not DEFAULT_OPENAPI.is_file():
        pytest.skip(f"TMDB's OpenAPI description is not available ({DEFAULT_OPENAPI})")
    spec = json.loads(DEFAULT_OPENAPI.read_text(encoding="utf-8"))
    content = spec["paths"]["/3/movie/{movie_id}"]["get"]["responses"]["200"]["content"]
    examples = content["application/json"]["examples"]
    body = json.loads(next(iter(examples.values()))["value"])
    assert isinstance(body, dict)
    return body


@pytest.fixture
def body(fight_club: dict[str, Any]) -> dict[str, Any]:
    """A private copy of the recorded Fight Club body, safe to mutate."""
    return copy.deepcopy(fight_club)


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


# --- retries -----------------------------------------------------------------------------------
def test_429_with_retry_after_zero_is_retried_once() -> None:
    before = retries("429")
    handler = Recorder(httpx.Response(429, headers={"Retry-After": "0"}), ok())
    assert call(handler) == OK_BODY
    assert handler.calls == 2
    assert retries("429") - before == 1


def test_429_retry_after_is_waited_for() -> None:
    handler = Recorder(httpx.Response(429, headers={"Retry-After": "0.2"}), ok())

    async def go() -> tuple[float, float]:
        async with TmdbClient(settings(), transport=httpx.MockTransport(handler)) as c:
            t0 = time.monotonic()
            await c.movie(550)
            return time.monotonic() - t0, c.backoff_wait_s

    elapsed, backoff = asyncio.run(go())
    assert elapsed >= 0.19
    assert backoff == pytest.approx(0.2)


def test_503_twice_then_200_is_ok() -> None:
    before = retries("5xx")
    handler = Recorder(httpx.Response(503), httpx.Response(503), ok())
    assert call(handler) == OK_BODY
    assert handler.calls == 3
    assert retries("5xx") - before == 2


def test_timeouts_then_200_is_ok() -> None:
    before = retries("timeout")
    handler = Recorder(httpx.ReadTimeout, httpx.ReadTimeout, ok())
    assert call(handler) == OK_BODY
    assert handler.calls == 3
    assert retries("timeout") - before == 2


def test_dropped_connection_then_200_is_ok() -> None:
    before = retries("connection")
    handler = Recorder(httpx.ConnectError, ok())
    assert call(handler) == OK_BODY
    assert retries("connection") - before == 1


def test_body_that_is_not_json_then_200_is_ok() -> None:
    before = retries("malformed")
    handler = Recorder(httpx.Response(200, content=b"<html>oops</html>"), ok())
    assert call(handler) == OK_BODY
    assert handler.calls == 2
    assert retries("malformed") - before == 1


def test_always_503_gives_up_after_max_retries_plus_one_attempts() -> None:
    before = retries("5xx")
    handler = Recorder(httpx.Response(503))
    with pytest.raises(TmdbUnavailable, match="4 attempts"):
        call(handler)
    assert handler.calls == 4
    # the last attempt is not a retry
    assert retries("5xx") - before == 3


def test_max_retries_zero_tries_once() -> None:
    handler = Recorder(httpx.Response(502))
    with pytest.raises(TmdbUnavailable):
        call(handler, max_retries=0)
    assert handler.calls == 1


def test_401_is_an_auth_error_at_once() -> None:
    handler = Recorder(httpx.Response(401, json={"status_message": "Invalid API key"}))
    with pytest.raises(TmdbAuthError, match="invalid TMDB token") as info:
        call(handler)
    assert handler.calls == 1
    assert "Invalid API key" in str(info.value)


def test_404_is_not_found_at_once() -> None:
    handler = Recorder(httpx.Response(404, json={"status_message": "not found"}))
    with pytest.raises(TmdbNotFound, match="/3/movie/550"):
        call(handler)
    assert handler.calls == 1


def test_400_is_an_error_not_retried() -> None:
    handler = Recorder(httpx.Response(400, text="bad request"))
    with pytest.raises(TmdbError) as info:
        call(handler)
    assert handler.calls == 1
    assert not isinstance(info.value, TmdbAuthError | TmdbNotFound | TmdbUnavailable)
    assert "400" in str(info.value)


def test_json_array_body_is_retried_then_unavailable() -> None:
    before = retries("malformed")
    handler = Recorder(ok([1, 2, 3]))
    with pytest.raises(TmdbUnavailable, match="list"):
        call(handler)
    assert handler.calls == 4
    assert retries("malformed") - before == 3


def test_requests_metric_counts_statuses() -> None:
    def requests(status: str) -> float:
        value = metrics.REGISTRY.get_sample_value(
            "cinepulse_tmdb_requests_total", {"endpoint": "movie", "status": status}
        )
        return value or 0.0

    before = (requests("503"), requests("200"))
    call(Recorder(httpx.Response(503), ok()))
    assert (requests("503") - before[0], requests("200") - before[1]) == (1, 1)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("9999", 120.0), ("abc", None), ("3", 3.0), ("1.5", 1.5), ("-5", 0.0), (None, None)],
)
def test_retry_after_is_parsed_and_capped(header: str | None, expected: float | None) -> None:
    headers = {} if header is None else {"Retry-After": header}
    assert _retry_after(httpx.Response(429, headers=headers)) == expected


def test_unparseable_retry_after_falls_back_to_backoff() -> None:
    handler = Recorder(httpx.Response(429, headers={"Retry-After": "soon"}), ok())
    assert call(handler) == OK_BODY
    assert handler.calls == 2


# --- rate and concurrency limits ---------------------------------------------------------------
def test_rate_limiter_spaces_requests() -> None:
    handler = Recorder(ok())

    async def go() -> tuple[float, float]:
        s = settings(rate_per_s=20, concurrency=20)
        async with TmdbClient(s, transport=httpx.MockTransport(handler)) as c:
            t0 = time.monotonic()
            await asyncio.gather(*(c.movie(i) for i in range(30)))
            return time.monotonic() - t0, c.rate_wait_s

    elapsed, waited = asyncio.run(go())
    assert handler.calls == 30
    # a burst of 20, then 10 more at 20/s
    assert elapsed >= 0.45
    assert waited > 0


def test_concurrency_limit_is_respected() -> None:
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.01)
        finally:
            in_flight -= 1
        return ok()

    async def go() -> None:
        s = settings(concurrency=2)
        async with TmdbClient(s, transport=httpx.MockTransport(handler)) as c:
            await asyncio.gather(*(c.movie(i) for i in range(10)))

    asyncio.run(go())
    assert peak == 2


def test_rate_below_one_per_second_still_works() -> None:
    handler = Recorder(ok())
    assert call(handler, rate_per_s=0.5) == OK_BODY


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


# --- the command line --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_parse_args_modes(mode: str) -> None:
    args = parse_args([mode])
    assert (args.mode, args.dry_run) == (mode, False)
    args = parse_args(["--dry-run", mode])
    assert (args.mode, args.dry_run) == (mode, True)


def test_parse_args_ids() -> None:
    args = parse_args(["--dry-run", "ids", "550", "603", "27205"])
    assert args.mode == "ids"
    assert args.dry_run is True
    assert args.ids == [550, 603, 27205]


@pytest.mark.parametrize(
    "argv", [["ids"], ["ids", "abc"], [], ["sideways"]], ids=["no-id", "not-int", "none", "bad"]
)
def test_parse_args_refuses_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    capsys.readouterr()


def test_summary_lists_counts_and_not_found_ids() -> None:
    counts = Counts(discovered=10, fetched=7, updated=5, unchanged=2, not_found=2, malformed=1)
    counts.not_found_ids = [111, 222]
    text = summary("ids", counts, 12.34, {"dry_run": False, "exit_code": 0})
    lines = text.splitlines()
    assert lines[0] == "tmdb-fetcher ids: 12.3s"
    assert any(line.split() == ["fetched", "7"] for line in lines)
    assert any(line.split() == ["not_found", "2"] for line in lines)
    assert any(line.split() == ["malformed", "1"] for line in lines)
    assert any(line.split() == ["exit_code", "0"] for line in lines)
    assert "not found: 111, 222" in text
    assert "not_found_ids" not in text


def test_summary_without_not_found_ids_has_no_such_line() -> None:
    text = summary("full", Counts(fetched=3), 1.0, {})
    assert "not found:" not in text


def test_exit_codes_are_distinct() -> None:
    codes = [EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_AUTH, EXIT_UNAVAILABLE, EXIT_SINK]
    assert len(set(codes)) == len(codes)
    assert EXIT_OK == 0
    assert EXIT_CONFIG == 2  # argparse's own code for bad arguments
