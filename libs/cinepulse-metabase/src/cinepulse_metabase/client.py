"""The Metabase side, through its HTTP API (see :mod:`cinepulse_metabase` for the
calls relied on): a small client, waiting for readiness, and ``provision``."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from cinepulse_metabase.content import load_content, provision_content
from cinepulse_metabase.database import datasource_for
from cinepulse_metabase.settings import (
    MetabaseError,
    MetabaseSetupSettings,
    NotReady,
    _need,
    _stderr,
)

# ------------------------------------------------------------------------------ Metabase side


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


class MetabaseClient:
    """The few calls ``provision`` makes: JSON in, JSON out, the session header once logged
    in. No proxy from the environment is used (Metabase is a Service of the cluster)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session: str | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, path: str, body: Any = None) -> Answer:
        """One request; an HTTP error status is an :class:`Answer` too. A connection that
        fails raises :class:`OSError` (``urllib.error.URLError``, a timeout)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is validated as http(s)
            self.url + path, data=data, method=method
        )
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.session:
            request.add_header("X-Metabase-Session", self.session)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        text = raw.decode("utf-8", "replace")
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Answer(status, parsed)


def _why(answer: Answer, secrets: Iterable[str] = ()) -> str:
    """A short reason from an error answer, with no secret in it."""
    body = answer.body
    reason = (body.get("message") or body.get("errors") or body) if isinstance(body, dict) else body
    text = f"HTTP {answer.status}: {reason if isinstance(reason, str) else json.dumps(reason)}"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:400]


def wait_until_ready(
    client: MetabaseClient,
    timeout_s: float,
    interval_s: float,
    *,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Poll ``/api/health`` until ``{"status": "ok"}``; :class:`NotReady` after ``timeout_s``
    with the last answer (or connection error) in the message."""
    say = progress or _stderr
    start = time.monotonic()
    last_said = -1e9
    while True:
        try:
            answer = client.call("GET", "/api/health")
            if (
                answer.status == 200
                and isinstance(answer.body, dict)
                and answer.body.get("status") == "ok"
            ):
                return
            last = _why(answer)
        except OSError as exc:
            last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        waited = time.monotonic() - start
        if waited + interval_s > timeout_s:
            raise NotReady(
                f"Metabase at {client.url} did not become ready within {timeout_s:g} s "
                f"(last answer of /api/health: {last})"
            )
        if waited - last_said >= 30:
            say(f"waiting for Metabase at {client.url}: {last}")
            last_said = waited
        time.sleep(interval_s)


def _expect(answer: Answer, what: str, secrets: Iterable[str] = ()) -> Any:
    if answer.status not in (200, 204):
        raise MetabaseError(f"Metabase refused to {what}: {_why(answer, secrets)}")
    return answer.body


def _login(client: MetabaseClient, email: str, password: str) -> str:
    answer = client.call("POST", "/api/session", {"username": email, "password": password})
    if answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("id"):
        return str(answer.body["id"])
    raise MetabaseError(
        f"Metabase refused the admin login of {email} ({_why(answer, [password])}): "
        "CINEPULSE_METABASE__ADMIN_PASSWORD (the chart: key admin-password of Metabase's "
        "Secret) is not that admin's password, or the admin has another email (was it changed "
        "in Metabase?). Put the current password in the Secret, or reset the admin's password "
        "in Metabase, then upgrade again"
    )


def _upsert_database(client: MetabaseClient, name: str, details: dict[str, Any]) -> tuple[int, str]:
    secrets = [details["password"]]
    listing = _expect(client.call("GET", "/api/database"), "list its databases", secrets)
    rows = listing.get("data", []) if isinstance(listing, dict) else (listing or [])
    same = sorted((r for r in rows if r.get("name") == name), key=lambda r: int(r["id"]))
    payload = {
        "name": name,
        "engine": "postgres",
        "details": details,
        "is_full_sync": True,
        "is_on_demand": False,
        "auto_run_queries": True,
    }
    if same:
        action, answer = "updated", client.call("PUT", f"/api/database/{same[0]['id']}", payload)
    else:
        action, answer = "created", client.call("POST", "/api/database", payload)
    if answer.status != 200 or not isinstance(answer.body, dict) or "id" not in answer.body:
        where = f"{details['user']}@{details['host']}:{details['port']}/{details['dbname']}"
        raise MetabaseError(
            f"Metabase refused the datasource {name!r} ({where}): {_why(answer, secrets)}"
        )
    return int(answer.body["id"]), action


def provision(
    settings: MetabaseSetupSettings, *, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Wait for Metabase, make the first admin on a fresh instance (else log in as it), turn
    the anonymous tracking off, create or update the warehouse datasource, then, when
    ``content_path`` is set, the questions and dashboards of :mod:`.content`."""
    mb = settings.metabase
    admin_password: SecretStr = _need(mb.admin_password, "CINEPULSE_METABASE__ADMIN_PASSWORD")
    password = admin_password.get_secret_value()
    details = datasource_for(settings)
    secrets = [password, details["password"]]
    # a bad content file is a configuration error, found before Metabase is touched
    content = load_content(mb.content_path) if mb.content_path is not None else None
    client = MetabaseClient(mb.url, mb.request_timeout_s)
    wait_until_ready(client, mb.ready_timeout_s, mb.retry_interval_s, progress=progress)

    props = _expect(client.call("GET", "/api/session/properties"), "show its properties")
    set_up = False
    if not (isinstance(props, dict) and props.get("has-user-setup")):
        token = props.get("setup-token") if isinstance(props, dict) else None
        if not token:
            raise MetabaseError("Metabase has no user yet and offers no setup token")
        answer = client.call(
            "POST",
            "/api/setup",
            {
                "token": token,
                "user": {
                    "email": mb.admin_email,
                    "password": password,
                    "first_name": mb.admin_first_name,
                    "last_name": mb.admin_last_name,
                },
                "prefs": {"site_name": mb.site_name, "allow_tracking": False},
            },
        )
        if answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("id"):
            client.session, set_up = str(answer.body["id"]), True
        elif answer.status != 403:  # 403: another run made the admin meanwhile; log in
            raise MetabaseError(f"Metabase refused the first admin: {_why(answer, secrets)}")
    if client.session is None:
        client.session = _login(client, mb.admin_email, password)

    _expect(
        client.call("PUT", "/api/setting/anon-tracking-enabled", {"value": False}),
        "turn its anonymous tracking off",
        secrets,
    )
    database_id, action = _upsert_database(client, mb.datasource_name, details)
    summary: dict[str, Any] = {
        "metabase": mb.url,
        "admin": mb.admin_email,
        "set_up": set_up,
        "datasource": mb.datasource_name,
        "database_id": database_id,
        "action": action,
        "reader": f"{details['user']}@{details['host']}:{details['port']}/{details['dbname']}",
        "schema": mb.schema_name,
    }
    if content is not None:
        summary["content"] = provision_content(client, database_id, content)
    return summary
