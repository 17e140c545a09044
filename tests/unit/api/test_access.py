"""The access rules that answer before any query (401/403) and the user tokens. The access
rules with data behind them are in tests/integration/test_api_access.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from cinepulse_api.app import create_app
from cinepulse_api.settings import ApiSettings
from cinepulse_common.access import UserTokenError, sign_user_token, verify_user_token
from tests.unit.api.fakes import AUTH, NO_DB, NOW, SECRET, make_client


def _token(user: str, ttl: int = 600, secret: str = SECRET) -> str:
    return sign_user_token(secret, user, ttl, now=NOW)


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "missing X-API-Key header"),
        ({"X-API-Key": "nope"}, 401, "invalid X-API-Key (no client has this key)"),
        ({"X-API-Key": "frontend-key"}, 401, "client 'web' (role frontend) must send X-User-Token"),
        # a client without a listed role is a frontend: the least privileged
        ({"X-API-Key": "partner-key"}, 401, "client 'partner' (role frontend) must send"),
        (
            {"X-API-Key": "frontend-key", "X-User-Token": _token("someone-else")},
            403,
            "the X-User-Token is for another user; client 'web' (role frontend) may read only",
        ),
        (
            {"X-API-Key": "frontend-key", "X-User-Token": _token("critic", ttl=-1)},
            401,
            "invalid X-User-Token: expired",
        ),
        (
            {"X-API-Key": "frontend-key", "X-User-Token": _token("critic", secret="x" * 32)},
            401,
            "invalid X-User-Token: bad signature",
        ),
        (
            {"X-API-Key": "frontend-key", "X-User-Token": _token("critic", ttl=86_400)},
            401,
            "invalid X-User-Token: expires more than 3600s ahead",
        ),
        (
            {"X-API-Key": "frontend-key", "X-User-Token": "garbage"},
            401,
            "invalid X-User-Token: malformed token",
        ),
        # a user token alone is not a credential
        ({"X-User-Token": _token("critic")}, 401, "missing X-API-Key header"),
    ],
    ids=[
        "no-key",
        "bad-key",
        "frontend-no-token",
        "unlisted-client-is-frontend",
        "other-users-token",
        "expired",
        "forged",
        "too-long-lived",
        "malformed",
        "token-without-key",
    ],
)
def test_per_user_data_is_refused_before_any_query(
    headers: dict[str, str], status: int, reason: str
) -> None:
    with make_client() as c:
        r = c.get("/api/user_stats/critic", headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(reason), r.json()
    if status == 401:
        assert r.headers["www-authenticate"] in ("X-API-Key", "X-User-Token")
    assert "etag" not in r.headers


def test_a_frontend_reads_no_user_without_a_token_secret() -> None:
    auth = {k: v for k, v in AUTH.items() if k != "user_token_secret"}
    with make_client(auth=auth) as c:
        r = c.get(
            "/api/user_stats/critic",
            headers={"X-API-Key": "frontend-key", "X-User-Token": _token("critic")},
        )
    assert r.status_code == 403
    assert "no user token secret is configured" in r.json()["detail"]


def test_aggregates_need_a_key_when_not_public() -> None:
    with make_client(auth=AUTH | {"public_aggregates": False}) as c:
        for path in ("/api/top_movies", "/api/movies/1", "/api/emotion_trends", "/api/trending"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.json() == {"detail": "missing X-API-Key header"}
            assert c.get(path, headers={"X-API-Key": "bad"}).status_code == 401
        # health and metrics stay open
        assert c.get("/healthz").status_code == 200
        assert c.get("/metrics").status_code == 200


def test_user_tokens_round_trip_and_refuse_tampering() -> None:
    token = sign_user_token(SECRET, "u-1042", 300, now=NOW)
    assert verify_user_token(SECRET, token, 3600, now=NOW) == "u-1042"
    header, claims, sig = token.split(".")
    # a standard JWT: any HS256 library reads it
    import base64
    import json

    def part(p: str) -> dict[str, object]:
        return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))

    assert part(header) == {"alg": "HS256", "typ": "JWT"}
    assert part(claims) == {"sub": "u-1042", "exp": int(NOW) + 300, "aud": "cinepulse-api"}

    def b64(d: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    forged = f"{header}.{b64({'sub': 'admin', 'exp': NOW + 300, 'aud': 'cinepulse-api'})}.{sig}"
    none_alg = f"{b64({'alg': 'none'})}.{claims}."
    for bad, reason in [
        (forged, "bad signature"),
        (none_alg, "unsupported algorithm"),
        (token + "x", "bad signature"),
        ("a.b", "malformed"),
        ("é.é.é", "malformed"),
    ]:
        with pytest.raises(UserTokenError, match=reason):
            verify_user_token(SECRET, bad, 3600, now=NOW)
    with pytest.raises(UserTokenError, match="expired"):
        verify_user_token(SECRET, token, 3600, now=NOW + 300)
    with pytest.raises(UserTokenError, match="bad signature"):
        verify_user_token("t" * 32, token, 3600, now=NOW)


def test_a_correctly_signed_token_with_wrong_claims_is_refused() -> None:
    import base64
    import hashlib
    import hmac
    import json

    def signed(header: dict[str, object], claims: object) -> str:
        def b64(d: object) -> str:
            return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

        signing_input = f"{b64(header)}.{b64(claims)}"
        sig = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"

    hs256 = {"alg": "HS256", "typ": "JWT"}
    good = {"sub": "u", "exp": NOW + 60, "aud": "cinepulse-api"}
    assert verify_user_token(SECRET, signed(hs256, good), 3600, now=NOW) == "u"
    assert (
        verify_user_token(
            SECRET, signed(hs256, good | {"aud": ["x", "cinepulse-api"]}), 60, now=NOW
        )
        == "u"
    )
    # a write token (the gateway's audience) reads nothing
    write = good | {"aud": "cinepulse-events"}
    with pytest.raises(UserTokenError, match="aud must be 'cinepulse-api'"):
        verify_user_token(SECRET, signed(hs256, write), 3600, now=NOW)
    assert verify_user_token(SECRET, signed(hs256, write), 3600, now=NOW, audience=write["aud"])
    # the reason is the verifier's own words: PyJWT's message (here "Not enough segments",
    # elsewhere quoting the claims it could not parse) is never echoed to the client
    for junk in ("not-a-jwt", "a.b", signed(hs256, good)[:-3] + "!!!"):
        with pytest.raises(UserTokenError) as refused:
            verify_user_token(SECRET, junk, 3600, now=NOW)
        assert str(refused.value) in {"malformed token (not a signed JWT)", "bad signature"}
    for header, claims, reason in [
        ({"alg": "HS512"}, good, "unsupported algorithm"),
        (hs256, ["u"], "malformed"),
        (hs256, good | {"sub": ""}, "no sub"),
        (hs256, good | {"aud": "other"}, "aud must be"),
        (hs256, {"sub": "u", "aud": "cinepulse-api"}, "no exp"),
        (hs256, good | {"exp": True}, "no exp"),
        # claims PyJWT checks itself, of the wrong type: refused, not a server error
        (hs256, good | {"nbf": [1]}, "malformed token"),
        (hs256, good | {"iat": [1]}, "malformed token"),
    ]:
        with pytest.raises(UserTokenError, match=reason):
            verify_user_token(SECRET, signed(header, claims), 3600, now=NOW)


def test_auth_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least 32 bytes"):
        ApiSettings(postgres=NO_DB, auth={"user_token_secret": "short"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"auth\.enabled=false is for development"):
        ApiSettings(postgres=NO_DB, environment="production", auth={"enabled": False})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="roles"):
        ApiSettings(postgres=NO_DB, auth={"roles": {"x": "admin"}})  # type: ignore[arg-type]
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", "postgresql://u:p@db/x")
    monkeypatch.setenv("CINEPULSE_AUTH__KEYS", '{"explorer": "k1"}')
    monkeypatch.setenv("CINEPULSE_AUTH__ROLES", '{"explorer": "internal"}')
    monkeypatch.setenv("CINEPULSE_AUTH__PUBLIC_AGGREGATES", "false")
    s = ApiSettings()
    assert s.auth.roles == {"explorer": "internal"} and not s.auth.public_aggregates
    assert s.auth.keys["explorer"].get_secret_value() == "k1"


def test_a_bad_key_source_stops_the_api_at_start(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="cannot load API keys"):
        create_app(ApiSettings(postgres=NO_DB, auth={"keys_path": tmp_path / "missing"}))  # type: ignore[arg-type]


def test_auth_disabled_opens_per_user_data() -> None:
    with make_client(auth={"enabled": False}) as c:
        # no credential needed: the request reaches the (missing) database
        assert c.get("/api/user_stats/critic").status_code == 503
        spec = c.get("/openapi.json").json()
    assert "securitySchemes" not in spec.get("components", {})
    assert "401" not in spec["paths"]["/api/user_stats/{user_id}"]["get"]["responses"]
