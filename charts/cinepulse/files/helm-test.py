"""helm test: one event through the gateway, read back through the api once Spark has
modelled it (Kafka -> Spark -> PostgreSQL). Exit 0 when the api shows the event."""

import json
import os
import pathlib
import sys
import time
import uuid
from datetime import UTC, datetime

import httpx

GATEWAY, API = os.environ["GATEWAY_URL"], os.environ["API_URL"]
DEADLINE_S = float(os.environ.get("DEADLINE_S", "300"))


def first_key(folder: str) -> str | None:
    """The key of the client named helm-test (an internal client of the api), else the
    first one in the mounted Secret."""
    path = pathlib.Path(folder)
    files = sorted(f for f in path.glob("*") if f.is_file() and not f.name.startswith("."))
    named = [f for f in files if f.name == "helm-test"]
    return (named or files)[0].read_text().strip() if files else None


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
r = httpx.post(f"{GATEWAY}/api/events", content=json.dumps(event), headers=headers, timeout=30)
print("gateway answered", r.status_code, r.text[:200])
if r.status_code != 202:
    sys.exit(1)
api_headers = {}
api_key = first_key("/var/run/secrets/cinepulse/api-keys")
if api_key:
    api_headers["X-API-Key"] = api_key
deadline = time.monotonic() + DEADLINE_S
while time.monotonic() < deadline:
    a = httpx.get(f"{API}/api/user_stats/{user}", headers=api_headers, timeout=10)
    if a.status_code == 200 and a.json().get("events", {}).get("rate") == 1:
        print("api shows the event:", a.text[:200])
        sys.exit(0)
    time.sleep(5)
print(f"the event was not visible through the api within {DEADLINE_S:.0f}s", file=sys.stderr)
sys.exit(1)
