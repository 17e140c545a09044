"""``cinepulse-event-gateway``: serve the gateway with uvicorn (uvloop, httptools)."""

from __future__ import annotations

from cinepulse_common.serving import serve_http
from cinepulse_event_gateway import __version__
from cinepulse_event_gateway.app import create_app
from cinepulse_event_gateway.settings import EventGatewaySettings


def main(argv: list[str] | None = None) -> None:
    serve_http(
        "event-gateway",
        __version__,
        EventGatewaySettings,
        create_app,
        "Serve the event gateway.",
        argv,
    )


if __name__ == "__main__":
    main()
