"""``cinepulse-api``: serve the api with uvicorn (uvloop, httptools)."""

from __future__ import annotations

import argparse

import uvicorn

from cinepulse_api import __version__
from cinepulse_api.app import create_app
from cinepulse_api.settings import ApiSettings
from cinepulse_common.logging import configure_logging
from cinepulse_common.observability import record_build_info
from cinepulse_common.settings import load_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="cinepulse-api",
        description="Serve the read API over the warehouse. Configuration comes from "
        "CINEPULSE_* variables (see the README); flags override host and port.",
    )
    parser.add_argument("--host", help="listen address (default: CINEPULSE_HOST or 0.0.0.0)")
    parser.add_argument("--port", type=int, help="listen port (default: CINEPULSE_PORT or 8000)")
    args = parser.parse_args(argv)
    settings = load_settings(ApiSettings)
    configure_logging("api", settings.log_level, settings.log_json)
    record_build_info("api", __version__)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
