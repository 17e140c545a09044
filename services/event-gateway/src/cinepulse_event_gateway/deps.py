"""What a route needs, as typed dependencies: the :class:`~cinepulse_event_gateway.gateway.
Gateway` the app keeps on ``app.state`` (built at start-up by :func:`cinepulse_event_gateway.
app.create_app`'s lifespan).

Async: FastAPI would run a plain function in its thread pool."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cinepulse_event_gateway.gateway import Gateway


async def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(_gateway)]
