"""The explorer without a database: the recommender client (a mock transport), the command
line, settings, and the page itself (Streamlit's AppTest) when PostgreSQL does not answer."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from cinepulse_common.settings import PostgresSettings
from cinepulse_explorer import __main__ as cli
from cinepulse_explorer.recommender import (
    RecommenderUnavailable,
    fetch_recommendations,
    parse_recommendations,
    with_titles,
)
from cinepulse_explorer.settings import ExplorerSettings

# nothing listens on port 9
NO_DB = "postgresql://u:p@127.0.0.1:9/none?connect_timeout=1"


def _fetch(handler: Callable[[httpx.Request], httpx.Response]) -> pd.DataFrame:
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return fetch_recommendations("http://rec:8000/", "critic", 3, client=client).items


def test_recommendations_come_best_first_with_the_request_asked() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        items = [
            {"movie_id": 3, "score": 0.2},
            {"movie_id": 1, "title": "Alpha", "score": 0.9},
        ]
        return httpx.Response(200, json={"items": items, "strategy": "lightfm", "model_version": 7})

    items = _fetch(handler)
    assert str(seen[0].url) == "http://rec:8000/api/recommendations?user_id=critic&k=3"
    assert items.to_dict("records") == [
        {"rank": 1, "movie_id": 1, "title": "Alpha", "score": 0.9},
        {"rank": 2, "movie_id": 3, "title": None, "score": 0.2},
    ]
    filled = with_titles(items, {3: "Gamma", 8: "Theta"})
    assert filled["title"].tolist() == ["Alpha", "Gamma"]


def test_the_explorers_key_goes_with_the_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("X-API-Key") != "explorer-key":
            return httpx.Response(401, json={"detail": "missing X-API-Key header"})
        return httpx.Response(200, json={"items": [], "strategy": "popular"})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        recs = fetch_recommendations(
            "http://rec", "critic", 3, api_key="explorer-key", client=client
        )
        assert recs.strategy == "popular"
        # no key: none sent, and the recommender's refusal is the page's notice
        with pytest.raises(RecommenderUnavailable, match="HTTP 401: missing X-API-Key header"):
            fetch_recommendations("http://rec", "critic", 3, client=client)
    assert "X-API-Key" not in seen[1].headers
    s = ExplorerSettings(postgres=PostgresSettings(dsn=NO_DB), recommender_api_key="k")
    assert s.recommender_api_key is not None and s.recommender_api_key.get_secret_value() == "k"
    assert s.recommender_key_header == "X-API-Key"


def test_parse_keeps_strategy_and_model_version() -> None:
    recs = parse_recommendations({"items": [], "strategy": "popular", "model_version": "v2"})
    assert recs.items.empty and list(recs.items.columns) == ["rank", "movie_id", "title", "score"]
    assert (recs.strategy, recs.model_version) == ("popular", "v2")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.ConnectError("refused"), "did not answer (ConnectError: refused)"),
        (httpx.ReadTimeout("slow"), "did not answer (ReadTimeout: slow)"),
        (httpx.Response(503, json={"detail": "no model yet"}), "HTTP 503: no model yet"),
        (httpx.Response(500, text="boom"), "HTTP 500: boom"),
        (httpx.Response(200, text="<html>"), "not understood"),
        (httpx.Response(200, json={"movies": []}), "not understood"),
        (httpx.Response(200, json={"items": [{"movie_id": 1}]}), "not understood"),
        (httpx.Response(200, json={"items": [1, 2]}), "not understood"),
    ],
)
def test_every_failure_is_one_readable_exception(
    answer: httpx.Response | httpx.HTTPError, message: str
) -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    with pytest.raises(RecommenderUnavailable, match=re.escape(message)):
        _fetch(handler)


def test_streamlit_runs_headless_on_the_settings_port() -> None:
    settings = ExplorerSettings(postgres=PostgresSettings(dsn=NO_DB), log_level="WARNING")
    args = cli.streamlit_args(settings, "127.0.0.1", 18501)
    assert args[:2] == ["run", str(cli.SERVER)] and cli.SERVER.is_file() and cli.APP.is_file()
    for flag in [
        "--server.headless=true",
        "--server.address=127.0.0.1",
        "--server.port=18501",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
        "--logger.level=warning",
    ]:
        assert flag in args


def test_settings_defaults_and_the_missing_dsn_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", NO_DB)
    s = ExplorerSettings()
    assert (s.port, s.address, s.cache_ttl_s) == (8501, "0.0.0.0", 60)  # noqa: S104
    monkeypatch.delenv("CINEPULSE_POSTGRES__DSN")
    with pytest.raises(SystemExit, match="CINEPULSE_POSTGRES"):
        cli.main([])


def test_the_page_says_the_warehouse_is_down_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", NO_DB)
    at = AppTest.from_file(str(cli.APP), default_timeout=30).run()
    assert not at.exception
    assert len(at.error) == 1
    assert at.error[0].value.startswith("The warehouse cannot be read: ")


def test_timed_counts_and_times_each_call_and_its_failures() -> None:
    from prometheus_client import REGISTRY

    from cinepulse_explorer.metrics import timed

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    @timed
    def unit_probe(fail: bool) -> str:
        if fail:
            raise RuntimeError("down")
        return "rows"

    ok0 = sample("cinepulse_explorer_queries_total", query="unit_probe", outcome="ok")
    err0 = sample("cinepulse_explorer_queries_total", query="unit_probe", outcome="error")
    assert unit_probe(False) == "rows"
    with pytest.raises(RuntimeError):
        unit_probe(True)
    assert sample("cinepulse_explorer_queries_total", query="unit_probe", outcome="ok") == ok0 + 1
    assert (
        sample("cinepulse_explorer_queries_total", query="unit_probe", outcome="error") == err0 + 1
    )
    assert sample("cinepulse_explorer_query_seconds_count", query="unit_probe") >= 2
    assert unit_probe.__name__ == "unit_probe"  # st.cache_data keys on the function


def test_the_metrics_endpoint_answers_prometheus_text() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from cinepulse_explorer.metrics import metrics_endpoint

    client = TestClient(Starlette(routes=[Route("/metrics", metrics_endpoint)]))
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "cinepulse_explorer_query_seconds" in answer.text
