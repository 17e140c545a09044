"""The one way an HTTP service starts: ``python -m <service> [--host --port]`` runs its
FastAPI app under uvicorn (uvloop, httptools), after loading its settings, configuring JSON
logging and recording its build info. uvicorn comes with the service that serves (the
gateway, the api), not with this library, so it is imported here lazily."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from cinepulse_common.logging import configure_logging
from cinepulse_common.observability import record_build_info, start_metrics_server
from cinepulse_common.settings import CinepulseSettings, load_settings


class _Served(Protocol):
    host: str
    port: int
    log_level: str
    log_json: bool


S = TypeVar("S", bound=CinepulseSettings)


def serve_http(
    service: str,
    version: str,
    settings_cls: type[S],
    create_app: Callable[[S], Any],
    description: str,
    argv: list[str] | None = None,
) -> None:
    """Parse ``--host``/``--port`` (which override ``CINEPULSE_HOST``/``CINEPULSE_PORT``),
    then serve ``create_app(settings)`` until SIGTERM (20 s of graceful shutdown); with a
    ``metrics_port`` (``CINEPULSE_METRICS_PORT``), ``/metrics`` on that port from a thread
    of this one process (uvicorn runs one worker: no multiprocess registry needed)."""
    import uvicorn

    parser = argparse.ArgumentParser(
        prog=f"cinepulse-{service}",
        description=f"{description} Configuration comes from CINEPULSE_* variables (see the "
        "README); flags override host and port.",
    )
    parser.add_argument("--host", help="listen address (default: CINEPULSE_HOST)")
    parser.add_argument("--port", type=int, help="listen port (default: CINEPULSE_PORT)")
    args = parser.parse_args(argv)  # before the settings: --help needs none
    settings = load_settings(settings_cls)
    served: _Served = settings  # type: ignore[assignment]
    configure_logging(service, served.log_level, served.log_json)
    record_build_info(service, version)
    metrics_port = int(getattr(settings, "metrics_port", 0) or 0)
    if metrics_port:
        start_metrics_server(metrics_port, addr=args.host or served.host)
    uvicorn.run(
        create_app(settings),
        host=args.host or served.host,
        port=args.port or served.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=20,
    )
