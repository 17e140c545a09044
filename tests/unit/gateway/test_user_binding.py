"""Events bound to users (OWASP API6): a frontend write key needs the api's signed user token
(``X-User-Token``) and may send only that user's events; a server key may send any user's.
Refusals are all or nothing and counted by reason."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from cinepulse_common.access import (
    READ_AUDIENCE,
    WRITE_AUDIENCE,
    KeyedServiceSettings,
    sign_user_token,
)
from cinepulse_event_gateway.app import create_app
from cinepulse_event_gateway.settings import AuthSettings, EventGatewaySettings
from tests.factories import event
from tests.unit.gateway.fakes import FakePublisher, make_client, post, post_batch, sample

SECRET = "gateway-unit-test-user-token-secret-0123456789"
#: ``web`` is a browser's key (not listed: frontend), ``relay`` a backend's (server)
AUTH: dict[str, Any] = {
    "keys": {"web": "k1", "relay": "k3"},
    "write_roles": {"relay": "server"},
    "user_token_secret": SECRET,
}
WEB = {"X-Write-Key": "k1"}
RELAY = {"X-Write-Key": "k3"}
REFUSALS = "cinepulse_gateway_auth_refusals_total"


def token(user: str, ttl_s: int = 900, secret: str = SECRET, now: float | None = None) -> str:
    return sign_user_token(secret, user, ttl_s, now=now, audience=WRITE_AUDIENCE)


def as_user(user: str, **kw: Any) -> dict[str, str]:
    """The web key's headers with a user token for ``user``."""
    return {**WEB, "X-User-Token": token(user, **kw)}


def refusals(reason: str) -> float:
    return sample(REFUSALS, {"reason": reason})


@pytest.fixture
def client(publisher: FakePublisher) -> Iterator[TestClient]:
    with make_client(publisher, auth=AUTH) as c:
        yield c


# --- frontend keys ----------------------------------------------------------------------------
def test_a_frontend_key_without_a_user_token_is_401(
    client: TestClient, publisher: FakePublisher
) -> None:
    before = refusals("missing_user_token")
    for send in (post, post_batch):
        body = event() if send is post else [event()]
        r = send(client, body, headers=WEB)
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "X-User-Token"
        detail = r.json()["detail"]
        assert "client 'web' (a frontend write key) must send X-User-Token" in detail
    assert publisher.published == []
    assert refusals("missing_user_token") == before + 2


def test_an_event_for_another_user_is_403_naming_it(
    client: TestClient, publisher: FakePublisher
) -> None:
    before = refusals("user_mismatch")
    ev = event(user_id="mallory-victim")
    r = post(client, ev, headers=as_user("alice"))
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["index"] == 0
    assert body["event_id"] == ev["event_id"]
    assert body["field"] == "user_id"
    assert body["detail"].startswith(f"event 0 (event_id {ev['event_id']}) is for another user")
    assert "X-User-Token" in body["detail"] and "'web'" in body["detail"]
    assert "mallory-victim" not in body["detail"]  # nothing echoed beyond what names the event
    # the rate limit's answer is kept on a refusal
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(r.headers)
    assert publisher.published == []
    assert refusals("user_mismatch") == before + 1


def test_a_batch_with_one_event_for_another_user_is_refused_whole(
    client: TestClient, publisher: FakePublisher
) -> None:
    """All or nothing: the valid events for the token's user are not published either."""
    before = sample(
        "cinepulse_gateway_events_rejected_total",
        {"event_type": "rate", "reason": "user_mismatch"},
    )
    batch = [event(user_id="alice"), event(user_id="bob"), event(user_id="carol")]
    del batch[2]["event_id"]
    r = post_batch(client, batch, headers=as_user("alice"))
    assert r.status_code == 403, r.text
    body = r.json()
    assert (body["index"], body["event_id"], body["field"]) == (1, batch[1]["event_id"], "user_id")
    assert body["detail"].startswith(f"event 1 (event_id {batch[1]['event_id']}), and 1 more,")
    assert "Nothing of this request was published" in body["detail"]
    assert publisher.published == []
    after = sample(
        "cinepulse_gateway_events_rejected_total",
        {"event_type": "rate", "reason": "user_mismatch"},
    )
    assert after == before + 3

    # an event sent without an id is named by its index alone
    r = post_batch(client, [batch[2]], headers=as_user("alice"))
    assert r.status_code == 403
    assert r.json()["event_id"] is None
    assert r.json()["detail"].startswith("event 0 is for another user")


def test_a_frontend_keys_events_for_its_tokens_user_are_202(
    client: TestClient, publisher: FakePublisher
) -> None:
    headers = as_user("alice")
    r = post(client, event(user_id="alice"), headers=headers)
    assert r.status_code == 202, r.text
    assert "x-ratelimit-limit" in r.headers
    r = post_batch(client, [event(user_id="alice"), event("click", user_id="alice")], headers)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 2
    assert [rec.key for rec in publisher.acked] == [b"alice"] * 3


def test_an_invalid_event_in_a_batch_is_rejected_on_its_own(
    client: TestClient, publisher: FakePublisher
) -> None:
    """The binding is checked on the valid events: an invalid one is rejected as before."""
    batch = [event(user_id="alice"), event(user_id="bob", movie_id="x")]
    r = post_batch(client, batch, headers=as_user("alice"))
    assert r.status_code == 202, r.text
    assert [x["status"] for x in r.json()["results"]] == ["accepted", "rejected"]
    assert len(publisher.acked) == 1


def _forged(user: str) -> str:
    return token(user, secret="another-secret-of-at-least-32-bytes-0000")


def _expired(user: str) -> str:
    return token(user, ttl_s=60, now=time.time() - 120)


def _too_long_lived(user: str) -> str:
    return token(user, ttl_s=7 * 24 * 3600)


def _wrong_audience(user: str) -> str:
    claims = {"sub": user, "exp": int(time.time()) + 600, "aud": "someone-else"}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _unsigned(user: str) -> str:
    claims = {"sub": user, "exp": int(time.time()) + 600, "aud": WRITE_AUDIENCE}
    return jwt.encode(claims, None, algorithm="none")


def _read_token(user: str) -> str:
    """A token the api would take for reading ``user``'s data: not one to write with."""
    return sign_user_token(SECRET, user, 600, audience=READ_AUDIENCE)


def _not_yet_valid(user: str) -> str:
    now = int(time.time())
    claims = {"sub": user, "exp": now + 600, "nbf": now + 300, "aud": WRITE_AUDIENCE}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("make", "reason", "metric"),
    [
        (_forged, "bad signature", "invalid_user_token"),
        (_expired, "expired", "expired_user_token"),
        (_too_long_lived, "too long-lived", "invalid_user_token"),
        (_wrong_audience, "aud must be 'cinepulse-events'", "invalid_user_token"),
        (_read_token, "aud must be 'cinepulse-events'", "invalid_user_token"),
        (_not_yet_valid, "not valid yet", "invalid_user_token"),
        (_unsigned, "HS256 only", "invalid_user_token"),
        (lambda user: "not-a-jwt", "malformed token", "invalid_user_token"),
    ],
)
def test_a_forged_or_expired_user_token_is_401(
    client: TestClient, publisher: FakePublisher, make: Any, reason: str, metric: str
) -> None:
    before = refusals(metric)
    headers = {**WEB, "X-User-Token": make("alice")}
    r = post(client, event(user_id="alice"), headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "X-User-Token"
    assert r.json()["detail"].startswith("invalid X-User-Token: ")
    assert reason in r.json()["detail"]
    assert publisher.published == []
    assert refusals(metric) == before + 1


def test_a_frontend_key_without_a_token_secret_sends_nothing(publisher: FakePublisher) -> None:
    """No secret configured: a frontend key can prove no user, so it is refused (403) and
    told so, without the gateway's settings; a server key still works."""
    auth = {k: v for k, v in AUTH.items() if k != "user_token_secret"}
    before = refusals("no_user_token_secret")
    with make_client(publisher, auth=auth) as c:
        r = post(c, event(user_id="alice"), headers=as_user("alice"))
        assert r.status_code == 403, r.text
        detail = r.json()["detail"]
        assert "takes no user tokens" in detail
        assert "CINEPULSE_" not in detail  # the settings' names are for the operator's log
        assert post(c, event(), headers=RELAY).status_code == 202
    assert len(publisher.published) == 1
    assert refusals("no_user_token_secret") == before + 1


# --- server keys ------------------------------------------------------------------------------
def test_a_server_key_sends_any_users_events(client: TestClient, publisher: FakePublisher) -> None:
    r = post(client, event(user_id="alice"), headers=RELAY)
    assert r.status_code == 202, r.text
    r = post_batch(client, [event(user_id=f"user-{i}") for i in range(5)], headers=RELAY)
    assert r.status_code == 202, r.text
    # a token it sends changes nothing
    r = post(client, event(user_id="bob"), headers={**RELAY, "X-User-Token": "junk"})
    assert r.status_code == 202, r.text
    assert len(publisher.acked) == 7


def test_auth_disabled_binds_no_user(publisher: FakePublisher) -> None:
    with make_client(publisher, auth={"enabled": False}) as c:
        assert c.post("/api/events", json=event(user_id="anyone")).status_code == 202


def test_write_key_refusals_are_counted(client: TestClient) -> None:
    before = refusals("missing_write_key"), refusals("invalid_write_key")
    assert post(client, event(), headers={"X-Write-Key": ""}).status_code == 401
    assert post(client, event(), headers={"X-Write-Key": "guess"}).status_code == 401
    assert (refusals("missing_write_key"), refusals("invalid_write_key")) == (
        before[0] + 1,
        before[1] + 1,
    )


def test_every_refusal_reason_starts_at_zero(client: TestClient) -> None:
    text = client.get("/metrics").text
    for reason in (
        "missing_write_key",
        "invalid_write_key",
        "missing_user_token",
        "invalid_user_token",
        "expired_user_token",
        "no_user_token_secret",
        "user_mismatch",
    ):
        assert f'{REFUSALS}{{reason="{reason}"}}' in text, reason


def test_a_browser_may_send_the_user_token_cross_origin(publisher: FakePublisher) -> None:
    with make_client(publisher, auth=AUTH, cors_origins=["https://app.example"]) as c:
        r = c.options(
            "/api/events",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-Write-Key, X-User-Token, Content-Type",
            },
        )
        assert r.status_code == 200, r.text
        assert "x-user-token" in r.headers["access-control-allow-headers"].lower()


def test_openapi_declares_the_user_token(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["UserToken"]["name"] == "X-User-Token"
    for path in ("/api/events", "/api/events/batch"):
        op = spec["paths"][path]["post"]
        assert op["security"] == [{"WriteKey": [], "UserToken": []}, {"WriteKey": []}]
        assert "403" in op["responses"]
        assert "X-RateLimit-Remaining" in op["responses"]["403"]["headers"]


# --- the key store's marking: roles and the user token settings --------------------------------
def test_a_key_not_marked_is_frontend_and_server_is_marked() -> None:
    auth = AuthSettings(keys={"web": "k1", "relay": "k3"}, write_roles={"relay": "server"})
    assert auth.role_of("web") == "frontend"
    assert auth.role_of("relay") == "server"
    assert auth.role_of("never-heard-of") == "frontend"


def test_roles_and_the_token_secret_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CINEPULSE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("CINEPULSE_AUTH__KEYS", '{"web": "k1", "backend": "k2"}')
    monkeypatch.setenv("CINEPULSE_AUTH__WRITE_ROLES", '{"backend": "server"}')
    monkeypatch.setenv("CINEPULSE_AUTH__USER_TOKEN_SECRET", SECRET)
    monkeypatch.setenv("CINEPULSE_AUTH__USER_TOKEN_MAX_TTL_S", "600")
    s = EventGatewaySettings()
    assert s.auth.write_roles == {"backend": "server"}
    assert s.auth.role_of("web") == "frontend"
    assert s.auth.token_secret() == SECRET
    assert s.auth.user_token_max_ttl_s == 600
    # the very variables the api (and the recommender) read: one secret for all (the roles
    # are each service's own: its pods' environment)
    api = KeyedServiceSettings().auth
    assert api.token_secret() == s.auth.token_secret()
    assert api.user_token_header == s.auth.user_token_header == "X-User-Token"


@pytest.mark.parametrize(
    ("auth", "error"),
    [
        ({"write_roles": {"web": "internal"}}, "write_roles.web"),  # a read role
        ({"write_roles": {"web": "Server"}}, "write_roles.web"),
        # the api's variable, CINEPULSE_AUTH__ROLES, given to the gateway: refused, named
        ({"roles": {"web": "server"}}, "CINEPULSE_AUTH__WRITE_ROLES"),
        ({"user_token_secret": "short"}, "at least 32 bytes"),
    ],
)
def test_a_bad_role_or_a_weak_secret_is_refused_at_start(auth: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        AuthSettings(keys={"web": "k1"}, **auth)


def test_roles_for_unknown_clients_and_secretless_frontend_keys_are_warned_about(
    publisher: FakePublisher, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = {"keys": {"web": "k1"}, "write_roles": {"gone": "server"}}
    settings = EventGatewaySettings(kafka={"bootstrap_servers": "127.0.0.1:1"}, auth=auth)
    create_app(settings, publisher=publisher)
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "roles given for clients without a write key" in logged
    assert "frontend write keys without a user token secret" in logged


# --- each user of a frontend key has a rate limit of their own --------------------------------
def test_one_user_cannot_spend_a_frontend_keys_whole_budget(publisher: FakePublisher) -> None:
    """alice exhausts her own limit (429 naming the user's limit) while the key has room;
    bob, through the same key, is not refused until the key's own limit is reached; a
    request the key refuses spends nothing of its user's limit; a server key is not counted
    per user."""
    left = 60 - time.time() % 60  # the limiter's windows are aligned on whole minutes
    if left < 5:
        time.sleep(left + 0.1)
    with make_client(
        publisher,
        auth=AUTH,
        limits={"max_batch_events": 3},
        user_rate_limit="3/minute",
        rate_limits={"web": "5/minute"},
    ) as c:
        gw = c.app.state.gateway  # type: ignore[attr-defined]
        for _ in range(3):
            r = post(c, event(user_id="alice"), headers=as_user("alice"))
            assert r.status_code == 202, r.text
        assert r.headers["x-ratelimit-limit"] == "3"  # the tighter limit's headers
        assert r.headers["x-ratelimit-remaining"] == "0"
        r = post(c, event(user_id="alice"), headers=as_user("alice"))
        assert r.status_code == 429, r.text
        assert "this user of client 'web'" in r.json()["detail"]
        assert int(r.headers["retry-after"]) >= 1
        # the key has 2 events left: bob sends them, then the key itself refuses him
        for _ in range(2):
            assert post(c, event(user_id="bob"), headers=as_user("bob")).status_code == 202
        r = post(c, event(user_id="carol"), headers=as_user("carol"))
        assert r.status_code == 429, r.text
        assert r.json()["detail"] == "rate limit 5 per 1 minute exceeded for client 'web'"
        # carol was refused by the key: her own window is untouched
        carol = gw.limiter.get_window_stats(gw.user_limit, "web", "carol")
        assert carol.remaining == 3
        for _ in range(4):  # a relay's events for alice are the relay's, not alice's
            assert post(c, event(user_id="alice"), headers=RELAY).status_code == 202
    assert len(publisher.published) == 3 + 2 + 4


def test_a_user_rate_limit_below_a_full_batch_is_refused_at_start() -> None:
    """As for a key: a user's limit below limits.max_batch_events would refuse a full batch
    of that user forever (413)."""
    kafka = {"bootstrap_servers": "k:9092"}
    with pytest.raises(ValidationError, match="user_rate_limit '200/10 seconds' allows 200"):
        EventGatewaySettings(kafka=kafka, user_rate_limit="200/10 seconds")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="user_rate_limit 'often'"):
        EventGatewaySettings(kafka=kafka, user_rate_limit="often")  # type: ignore[arg-type]
    unlimited = EventGatewaySettings(kafka=kafka, user_rate_limit="unlimited")  # type: ignore[arg-type]
    assert unlimited.user_limit() is None
    assert EventGatewaySettings(kafka=kafka).user_limit().amount == 500  # type: ignore[arg-type,union-attr]
