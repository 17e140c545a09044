"""``cinepulse-api``: serve the api with uvicorn (uvloop, httptools)."""

from __future__ import annotations

from cinepulse_api import __version__
from cinepulse_api.app import create_app
from cinepulse_api.settings import ApiSettings
from cinepulse_common.serving import serve_http


def main(argv: list[str] | None = None) -> None:
    serve_http(
        "api", __version__, ApiSettings, create_app, "Serve the read API over the warehouse.", argv
    )


if __name__ == "__main__":
    main()
