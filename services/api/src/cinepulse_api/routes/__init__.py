"""The api's operations, one :class:`fastapi.APIRouter` per area; :func:`cinepulse_api.app.
create_app` includes them."""
