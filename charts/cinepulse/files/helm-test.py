"""helm test: one event through the gateway, read back through the api once Spark has
modelled it (Kafka -> Spark -> PostgreSQL). Exit 0 when the api shows the event.

Standard library only: it runs in the gateway's image, which carries no HTTP client (an
import of httpx failed there on the real node)."""

import json
import os
import pathlib
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime

GATEWAY, API = os.environ["GATEWAY_URL"], os.environ["API_URL"]
DEADLINE_S = float(os.environ.get("DEADLINE_S", "300"))


def first_key(folder: str) -> str | None:
    """The key of the client named helm-test (an internal client of the api), else the
    first one in the mounted Secret."""
    path = pathlib.Path(folder)
    files = sorted(f for f in path.glob("*") if f.is_file() and not f.name.startswith("."))
    named = [f for f in files if f.name == "helm-test"]
    return (named or files)[0].read_text().strip() if files else None


def call(url: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, str]:
    """(status, body) of a GET, or of a POST when ``body`` is given; an HTTP error status is
    an answer, a connection error is status 0."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url!r}")
    # the scheme is checked just above (S310 warns of file: and custom schemes)
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


user = f"helm-test-{uuid.uuid4().hex[:12]}"
event = {
    "event_id": str(uuid.uuid4()),
    "event_type": "rate",
    "user_id": user,
    "movie_id": 603,
    "occurred_at": datetime.now(UTC).isoformat(),
    "payload": {"rating": 4.5},
}
headers = {"Content-Type": "application/json"}
write_key = first_key("/var/run/secrets/cinepulse/write-keys")
if write_key:
    headers["X-Write-Key"] = write_key
status, text = call(f"{GATEWAY}/api/events", headers, json.dumps(event).encode())
print("gateway answered", status, text[:200])
if status != 202:
    sys.exit(1)
api_headers = {}
api_key = first_key("/var/run/secrets/cinepulse/api-keys")
if api_key:
    api_headers["X-API-Key"] = api_key
deadline = time.monotonic() + DEADLINE_S
while time.monotonic() < deadline:
    status, text = call(f"{API}/api/user_stats/{user}", api_headers)
    if status == 200 and json.loads(text).get("events", {}).get("rate") == 1:
        print("api shows the event:", text[:200])
        sys.exit(0)
    time.sleep(5)
print(f"the event was not visible through the api within {DEADLINE_S:.0f}s", file=sys.stderr)
sys.exit(1)
