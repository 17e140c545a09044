"""Issue 20, "metrics share the HTTP port": with ``metrics_port`` set (the chart always sets
it, ``CINEPULSE_METRICS_PORT``) each long-running service serves ``/metrics`` on that port
alone and answers 404 for it on its public port; without it (local runs, tests) ``/metrics``
stays on the public port. The chart's side: test_chart_metrics_ports.py."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cinepulse_common import observability, serving
from cinepulse_common.settings import load_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_health_routes_leave_metrics_out_when_asked() -> None:
    on, off = FastAPI(), FastAPI()
    observability.add_health_routes(on)
    observability.add_health_routes(off, metrics=False)
    assert TestClient(on).get("/metrics").status_code == 200
    client = TestClient(off)
    assert client.get("/metrics").status_code == 404
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_the_api_gateway_and_recommender_serve_metrics_on_their_port_only_without_one() -> None:
    from tests.unit.api.fakes import make_client as api_client
    from tests.unit.gateway.fakes import FakePublisher
    from tests.unit.gateway.fakes import make_client as gateway_client
    from tests.unit.test_recommender_serving import _app as recommender_client

    for make in (api_client, lambda **o: gateway_client(FakePublisher(), **o), recommender_client):
        assert make().get("/metrics").status_code == 200
        separate = make(metrics_port=9464)
        assert separate.get("/metrics").status_code == 404
        assert separate.get("/healthz").status_code == 200


def test_the_setting_is_read_from_the_environment_in_each_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cinepulse_api.settings import ApiSettings
    from cinepulse_archiver.settings import ArchiverSettings
    from cinepulse_event_gateway.settings import EventGatewaySettings
    from cinepulse_explorer.settings import ExplorerSettings
    from cinepulse_recommender.settings import RecommenderSettings

    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", "postgresql://u:p@127.0.0.1:1/db")
    monkeypatch.setenv("CINEPULSE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("CINEPULSE_MONGO__URL", "mongodb://127.0.0.1:1/")
    monkeypatch.setenv("CINEPULSE_AUTH__ENABLED", "false")
    classes: list[Any] = [
        ApiSettings,
        RecommenderSettings,
        EventGatewaySettings,
        ArchiverSettings,
        ExplorerSettings,
    ]
    for cls in classes:
        monkeypatch.delenv("CINEPULSE_METRICS_PORT", raising=False)
        assert load_settings(cls).metrics_port == 0, cls
        monkeypatch.setenv("CINEPULSE_METRICS_PORT", "9464")
        assert load_settings(cls).metrics_port == 9464, cls


def test_serve_http_serves_metrics_on_the_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real metrics server, started before uvicorn (which is replaced here): the metrics
    port answers Prometheus text, and the app got no /metrics of its own."""
    import uvicorn

    from cinepulse_api.settings import ApiSettings

    metrics_port = _free_port()
    served: dict[str, Any] = {}

    def run(app: Any, **kwargs: Any) -> None:
        served["app"], served["kwargs"] = app, kwargs

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", "postgresql://u:p@127.0.0.1:1/db")
    monkeypatch.setenv("CINEPULSE_AUTH__ENABLED", "false")
    monkeypatch.setenv("CINEPULSE_METRICS_PORT", str(metrics_port))
    from cinepulse_api.app import create_app

    serving.serve_http("api", "0", ApiSettings, create_app, "t", ["--host", "127.0.0.1"])
    r = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
    assert r.status_code == 200
    assert 'cinepulse_build_info{service="api"' in r.text
    assert TestClient(served["app"]).get("/metrics").status_code == 404
    assert served["kwargs"]["host"] == "127.0.0.1"


def test_the_archiver_drops_its_metrics_view_with_a_metrics_port(tmp_path: Path) -> None:
    from cinepulse_archiver.app import create_app
    from cinepulse_archiver.settings import ArchiverSettings

    def views(**overrides: Any) -> set[str]:
        settings = ArchiverSettings(
            kafka={"bootstrap_servers": "127.0.0.1:1"},
            mongo={"url": "mongodb://127.0.0.1:9/"},
            data_dir=tmp_path,
            **overrides,
        )
        app = create_app(settings)
        app.web.init_server()
        return set(app.web.views)

    assert "/metrics" in views()
    separate = views(metrics_port=9464)
    assert "/metrics" not in separate
    assert {"/healthz", "/readyz", "/counters/trending"} <= separate


def test_the_explorer_starts_its_metrics_server_before_streamlit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamlit.web import cli as streamlit_cli

    from cinepulse_explorer import __main__ as explorer

    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        observability, "start_metrics_server", lambda port, addr: calls.append(("metrics", port))
    )
    monkeypatch.setattr(
        streamlit_cli.main, "main", lambda args, prog_name: calls.append(("streamlit", args))
    )
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", "postgresql://u:p@127.0.0.1:1/db")
    monkeypatch.setenv("CINEPULSE_METRICS_PORT", "9464")
    explorer.main(["--address", "127.0.0.1"])
    assert [c[0] for c in calls] == ["metrics", "streamlit"]
    assert calls[0][1] == 9464
    monkeypatch.delenv("CINEPULSE_METRICS_PORT")
    calls.clear()
    explorer.main([])
    assert [c[0] for c in calls] == ["streamlit"]


def test_the_local_stack_scrapes_the_metrics_ports(tmp_path: Path) -> None:
    """Each scraped service of the stack gets CINEPULSE_METRICS_PORT and its Prometheus
    target is that port, labelled endpoint="metrics" as the ServiceMonitor's."""
    from cinepulse_devstack import Stack, StackSettings
    from cinepulse_devstack.services import PythonService, SparkStream

    stack = Stack(StackSettings(root=tmp_path))
    seen = set()
    for svc in stack.services:
        assert isinstance(svc, PythonService)
        if not svc.scraped or isinstance(svc, SparkStream):
            continue
        assert svc.metrics_port and svc.metrics_port != svc.port, svc.name
        assert svc.ports == [svc.port, svc.metrics_port]
        assert svc.scrape_labels()["endpoint"] == "metrics"
        assert svc.metrics_url == f"http://{stack.cfg.host}:{svc.metrics_port}"
        svc.register()
        target = stack.prometheus.targets_dir / f"{svc.name}.json"
        assert f":{svc.metrics_port}" in target.read_text(), svc.name
        seen.add(svc.name)
    assert seen == {"event-gateway", "archiver", "api", "recommender", "explorer"}


@pytest.mark.parametrize(("metrics_port", "routes"), [("9464", []), ("0", ["/metrics"])])
def test_the_explorers_streamlit_server_has_metrics_only_without_a_metrics_port(
    metrics_port: str, routes: list[str]
) -> None:
    """Its server module builds the st.App once per process, from the environment: in a
    process of its own, as cinepulse-explorer runs it."""
    import os
    import subprocess
    import sys

    code = (
        "import cinepulse_explorer.server as s; "
        "print([r.path for r in s.app._user_routes or []])"  # Streamlit keeps ours there
    )
    env = os.environ | {
        "CINEPULSE_POSTGRES__DSN": "postgresql://u:p@127.0.0.1:1/db",
        "CINEPULSE_METRICS_PORT": metrics_port,
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == repr(routes)
