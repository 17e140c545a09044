"""The gateway's operations as a :class:`fastapi.APIRouter`; :func:`cinepulse_event_gateway.app.
create_app` includes it."""
