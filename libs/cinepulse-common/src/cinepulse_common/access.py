"""Who may read what: API keys with a role per client, and signed user tokens. Shared by
every service serving per-user data: the api (``/api/user_stats/{user_id}``) and the
recommender (``/api/recommendations?user_id=``), which take the same keys, roles and token
secret from the same ``CINEPULSE_AUTH__*`` variables (:class:`ApiAuthSettings`).

* **Aggregates** (the api's top movies, movies, emotion trends, trending; the recommender's
  similar movies): public by default (``CINEPULSE_AUTH__PUBLIC_AGGREGATES=true``); when
  false, every request needs a valid key.
* **Per-user data**: always a valid key (header ``X-API-Key``; keys from
  ``CINEPULSE_AUTH__KEYS_PATH`` / ``CINEPULSE_AUTH__KEYS``, the shared
  :mod:`cinepulse_common.apikeys` store), and the client's role decides
  (``CINEPULSE_AUTH__ROLES``, ``{client: role}``; a client not listed is ``frontend``):

  * ``internal`` (a trusted service: the explorer, the recommender) reads any user;
  * ``frontend`` (the web app's backend) must also send ``X-User-Token``, a token for the
    signed-in user, and reads only that user. The token is a JWT (RFC 7519) signed with
    HS256 using ``CINEPULSE_AUTH__USER_TOKEN_SECRET``, a secret shared with the frontend's
    backend, with the claims ``sub`` (the user id), ``exp`` (expiry, Unix seconds; at most
    ``CINEPULSE_AUTH__USER_TOKEN_MAX_TTL_S`` ahead) and ``aud`` = ``cinepulse-api``. Any JWT
    library can mint one; :func:`sign_user_token` does it in Python.

* Answers: **401** (with ``WWW-Authenticate``) when a credential is missing, unknown,
  malformed or expired; **403** when a valid caller asks for what its role does not allow
  (another user's data). Authorization is decided before the data is read, so a 404 never
  tells an unauthorised caller whether a user exists, and a refused request's answer never
  depends on what it asked for beyond the user.
* The event gateway checks user tokens signed with the same secret, from the same
  ``CINEPULSE_AUTH__USER_TOKEN_*`` settings (:class:`UserTokenSettings`), with
  :func:`verify_user_token`, but of their own audience, ``aud`` = ``cinepulse-events``
  (:data:`WRITE_AUDIENCE`): a frontend write key's events must be for the user of its token,
  and a token issued for reading cannot be replayed to write.
* ``CINEPULSE_AUTH__ENABLED=false`` opens everything (local development only; refused when
  ``CINEPULSE_ENVIRONMENT=production``: :class:`KeyedServiceSettings`).

A service's settings derive from :class:`KeyedServiceSettings` (the ``auth`` block), its app
builds one :class:`Access` with :func:`build_access` (kept in ``app.state.access``), takes
:func:`user_credentials` / :func:`aggregate_reader` as dependencies and calls
:meth:`Access.authorize_user` with the user id before reading anything; :func:`add_security`
declares the schemes in its OpenAPI document. Every ``/api/`` request is counted against its
caller's rate limit first (:mod:`cinepulse_common.read_limits`, settings in the same class).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Self

import jwt
from fastapi import HTTPException, Request
from pydantic import BaseModel, Field, SecretStr, model_validator

from cinepulse_common.apikeys import ApiKeyError, ApiKeys, ApiKeySettings
from cinepulse_common.logging import get_logger
from cinepulse_common.read_limits import ReadRateLimitSettings
from cinepulse_common.settings import CinepulseSettings

log = get_logger(__name__)

Role = Literal["internal", "frontend"]
#: the role of a client that ``CINEPULSE_AUTH__ROLES`` does not list: the least privileged
DEFAULT_ROLE: Role = "frontend"
#: the ``aud`` claim of a user token for reading that user's data (the api, the recommender)
READ_AUDIENCE = "cinepulse-api"
#: the ``aud`` claim of a user token for sending that user's events (the event gateway): a
#: separate audience, so a token handed out for reads cannot be replayed to write events
WRITE_AUDIENCE = "cinepulse-events"
ALGORITHM = "HS256"
#: the shortest user token secret accepted (bytes): HS256 wants at least its hash size
MIN_TOKEN_SECRET_BYTES = 32


class UserTokenError(ValueError):
    """A user token that cannot be accepted (malformed, bad signature, expired, ...)."""


class UserTokenExpired(UserTokenError):
    """A user token past its ``exp`` (told apart in metrics: a client's clock or token
    refresh, not a forgery)."""


def sign_user_token(
    secret: str,
    user_id: str,
    ttl_s: int = 900,
    now: float | None = None,
    audience: str = READ_AUDIENCE,
) -> str:
    """A token letting a ``frontend`` client act for ``user_id`` for ``ttl_s`` seconds (what
    the frontend's backend does for its signed-in user): read that user's data
    (``READ_AUDIENCE``, the default) or send that user's events (``WRITE_AUDIENCE``)."""
    exp = int((time.time() if now is None else now) + ttl_s)
    claims = {"sub": user_id, "exp": exp, "aud": audience}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


#: the fixed reason told to the client for each way PyJWT can refuse a token: the library's
#: own message is logged, never answered (it quotes claims and internals of the decoder)
_REFUSALS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, f"unsupported algorithm ({ALGORITHM} only)"),
    (jwt.ImmatureSignatureError, "not valid yet (nbf or iat in the future)"),
    (jwt.InvalidIssuedAtError, "iat is not a number"),
    (jwt.DecodeError, "malformed token (not a signed JWT)"),
)


def verify_user_token(
    secret: str,
    token: str,
    max_ttl_s: int,
    now: float | None = None,
    audience: str = READ_AUDIENCE,
) -> str:
    """The user id the token was issued for; :class:`UserTokenError` naming the reason.

    PyJWT checks the signature (HS256 only: ``none`` and other algorithms are refused before
    anything else), the audience (``READ_AUDIENCE`` or ``WRITE_AUDIENCE``) and the required
    claims; the expiry is checked here against ``now`` (tests pin it), together with the
    longest lifetime a token may have. The reasons are this module's own words."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require": ["sub", "exp", "aud"], "verify_exp": False},
        )
    except jwt.MissingRequiredClaimError as exc:
        claim = exc.claim if exc.claim in ("sub", "exp", "aud") else "required"
        raise UserTokenError(f"no {claim} claim") from None
    except jwt.InvalidAudienceError:
        raise UserTokenError(f"aud must be {audience!r}") from None
    except jwt.InvalidTokenError as exc:
        log.info("user token refused", error=type(exc).__name__, detail=str(exc)[:200])
        reason = next((r for kind, r in _REFUSALS if isinstance(exc, kind)), "invalid token")
        raise UserTokenError(reason) from None
    except (TypeError, ValueError) as exc:
        # PyJWT's own claim checks raise these for a signed token whose iat or nbf is not a
        # number (a list, say): a malformed token, not a server error
        log.info("user token refused", error=type(exc).__name__, detail=str(exc)[:200])
        raise UserTokenError("malformed token (a claim of the wrong type)") from None
    sub, exp = claims.get("sub"), claims.get("exp")
    if not isinstance(sub, str) or not sub:
        raise UserTokenError("no sub (user id) claim")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise UserTokenError("no exp (expiry) claim")
    t = time.time() if now is None else now
    if exp <= t:
        raise UserTokenExpired("expired")
    if exp - t > max_ttl_s:
        raise UserTokenError(f"expires more than {max_ttl_s}s ahead (too long-lived)")
    return sub


@dataclass(frozen=True)
class Caller:
    """Who is asking: a client id and its role, or nobody (``client=None``: no key, allowed
    only where reads are public)."""

    client: str | None
    role: Role | None


ANONYMOUS = Caller(None, None)
#: everything open (auth disabled)
UNRESTRICTED = Caller("anonymous", "internal")


class Access:
    """The rules above, over a key store (``None``: auth disabled)."""

    def __init__(
        self,
        keys: ApiKeys | None,
        *,
        roles: dict[str, Role],
        public_aggregates: bool,
        key_header: str,
        token_header: str,
        token_secret: str | None,
        token_max_ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.roles = roles
        self.public_aggregates = public_aggregates
        self.key_header = key_header
        self.token_header = token_header
        self.token_secret = token_secret
        self.token_max_ttl_s = token_max_ttl_s
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def _unauthenticated(self, reason: str, scheme: str) -> HTTPException:
        return HTTPException(401, reason, headers={"WWW-Authenticate": scheme})

    def identify(self, key: str | None) -> Caller:
        """The caller owning ``key``; 401 when the key is missing or unknown."""
        if self.keys is None:
            return UNRESTRICTED
        client = self.keys.client_for(key)
        if client is None:
            reason = (
                f"missing {self.key_header} header"
                if not key
                else f"invalid {self.key_header} (no client has this key)"
            )
            raise self._unauthenticated(reason, self.key_header)
        return Caller(client, self.roles.get(client, DEFAULT_ROLE))

    def aggregate_reader(self, key: str | None) -> Caller:
        """Aggregates: anyone when they are public, else a known client."""
        if self.keys is None or self.public_aggregates:
            return ANONYMOUS if self.keys is not None else UNRESTRICTED
        return self.identify(key)

    def authorize_user(self, caller: Caller, user_id: str, token: str | None) -> None:
        """May ``caller`` (already identified) read ``user_id``'s data? 401 / 403 if not."""
        if caller.role == "internal":
            return
        if self.token_secret is None:
            raise HTTPException(
                403,
                f"client {caller.client!r} (role {caller.role}) may not read per-user data: "
                "no user token secret is configured (CINEPULSE_AUTH__USER_TOKEN_SECRET), "
                "and only internal clients read any user",
            )
        if not token:
            raise self._unauthenticated(
                f"client {caller.client!r} (role {caller.role}) must send {self.token_header}, "
                "a token for the user whose data it reads",
                self.token_header,
            )
        try:
            subject = verify_user_token(
                self.token_secret, token, self.token_max_ttl_s, now=self.clock()
            )
        except UserTokenError as exc:
            raise self._unauthenticated(
                f"invalid {self.token_header}: {exc}", self.token_header
            ) from None
        if not hmac.compare_digest(subject.encode(), user_id.encode()):
            raise HTTPException(
                403,
                f"the {self.token_header} is for another user; client {caller.client!r} "
                f"(role {caller.role}) may read only that user's data",
            )


# --- settings --------------------------------------------------------------------------------
class UserTokenSettings(BaseModel):
    """The user tokens (``CINEPULSE_AUTH__USER_TOKEN_*``): one block for every service that
    checks them, the api and the recommender (reads) and the event gateway (writes), so the
    one secret signs a signed-in user's tokens for all of them."""

    user_token_header: str = Field(
        "X-User-Token", description="request header carrying a frontend's user token"
    )
    user_token_secret: SecretStr | None = Field(
        None,
        description="HS256 secret of the user tokens (JWT: sub, exp, aud=cinepulse-api for "
        "reads, cinepulse-events for writes), "
        f"shared with the frontend's backend; at least {MIN_TOKEN_SECRET_BYTES} bytes. Unset: "
        "frontend clients read no per-user data (api, recommender) and send no events "
        "(event gateway)",
    )
    user_token_max_ttl_s: int = Field(
        3600, ge=1, description="a token expiring further ahead than this is refused"
    )

    @model_validator(mode="after")
    def _strong_secret(self) -> Self:
        secret = self.user_token_secret
        if secret is not None and len(secret.get_secret_value().encode()) < MIN_TOKEN_SECRET_BYTES:
            raise ValueError(f"user_token_secret must be at least {MIN_TOKEN_SECRET_BYTES} bytes")
        return self

    def token_secret(self) -> str | None:
        """The secret in the clear (``None``: no token is accepted)."""
        secret = self.user_token_secret
        return secret.get_secret_value() if secret is not None else None


class ApiAuthSettings(UserTokenSettings, ApiKeySettings):
    """API keys (``keys``, ``keys_path``: see :class:`ApiKeySettings`), roles, user tokens
    (:class:`UserTokenSettings`)."""

    enabled: bool = Field(
        True, description="check keys and the per-user rules; false opens everything (dev only)"
    )
    header: str = Field("X-API-Key", description="request header carrying the API key")
    public_aggregates: bool = Field(
        True,
        description="aggregates (the api's top movies, movies, emotion trends and trending; "
        "the recommender's similar movies) without a key; per-user endpoints always need one",
    )
    roles: dict[str, Role] = Field(
        default_factory=dict,
        description="client id -> role: internal reads any user, frontend only the user of "
        "its user token; a client not listed is frontend",
    )


class KeyedServiceSettings(CinepulseSettings):
    """Base of the settings of a service serving per-user data (``CINEPULSE_AUTH__*``): the
    ``auth`` block, and checking keys is never turned off in production; the request limits
    per client or address (``CINEPULSE_RATE_LIMIT__*``: :mod:`cinepulse_common.read_limits`)."""

    auth: ApiAuthSettings = ApiAuthSettings()
    rate_limit: ReadRateLimitSettings = ReadRateLimitSettings()

    @model_validator(mode="after")
    def _auth_in_production(self) -> KeyedServiceSettings:
        if self.environment == "production" and not self.auth.enabled:
            raise ValueError("auth.enabled=false is for development; production checks keys")
        return self


def build_access(auth: ApiAuthSettings, *, service: str) -> Access:
    """The :class:`Access` of ``auth`` (``None`` keys when disabled); a key source that
    cannot be read stops the ``service`` at start."""
    keys = None
    if auth.enabled:
        try:
            keys = ApiKeys.from_settings(auth)
        except ApiKeyError as exc:
            raise SystemExit(f"{service}: cannot load API keys: {exc}") from None
        unknown = sorted(set(auth.roles) - set(keys.clients))
        if unknown:
            log.warning("roles given for clients without a key", clients=unknown)
        if not keys.clients:
            log.warning(
                "no API key is configured: per-user endpoints answer 401 to everyone "
                "(CINEPULSE_AUTH__KEYS_PATH or CINEPULSE_AUTH__KEYS)"
            )
    return Access(
        keys,
        roles=auth.roles,
        public_aggregates=auth.public_aggregates,
        key_header=auth.header,
        token_header=auth.user_token_header,
        token_secret=auth.token_secret(),
        token_max_ttl_s=auth.user_token_max_ttl_s,
    )


# --- FastAPI: dependencies reading the app's Access (``app.state.access``) -------------------
@dataclass(frozen=True)
class Credentials:
    """A per-user request's caller (identified by its key) and the user token it sent."""

    caller: Caller
    user_token: str | None


async def user_credentials(request: Request) -> Credentials:
    """The caller of a per-user request (401 without a known key) and its user token; the
    operation then calls ``access.authorize_user(caller, user_id, user_token)``."""
    access: Access = request.app.state.access
    if not access.enabled:
        return Credentials(UNRESTRICTED, None)
    headers = request.headers
    return Credentials(
        access.identify(headers.get(access.key_header)), headers.get(access.token_header)
    )


async def aggregate_reader(request: Request) -> None:
    """Aggregates: open when public, else 401 without a known key."""
    access: Access = request.app.state.access
    access.aggregate_reader(request.headers.get(access.key_header))


# --- OpenAPI ---------------------------------------------------------------------------------
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def add_security(spec: dict[str, Any], access: Access, user_paths: Iterable[str]) -> None:
    """The key and user-token schemes, and which operation needs what: ``user_paths`` (per-user
    data) a key, and a user token for a frontend client; the other ``/api/`` operations a key
    only when aggregates are not public. (The dependencies read the headers themselves, as
    their names are settings.)"""
    per_user = set(user_paths)
    schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["ApiKey"] = {
        "type": "apiKey",
        "in": "header",
        "name": access.key_header,
        "description": "the client's API key; per-user endpoints always need one, aggregates "
        "only when CINEPULSE_AUTH__PUBLIC_AGGREGATES=false. An internal client reads any "
        "user's data; a frontend client needs a user token too",
    }
    schemes["UserToken"] = {
        "type": "apiKey",
        "in": "header",
        "name": access.token_header,
        "description": "a frontend client's user token: a JWT signed with HS256 (the secret "
        "shared with the frontend's backend) with the claims sub (the user id), exp and "
        "aud = cinepulse-api; it lets the client read that user's data only",
    }
    for path, item in spec["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            if path in per_user:
                op["security"] = [{"ApiKey": [], "UserToken": []}, {"ApiKey": []}]
            elif not access.public_aggregates:
                op["security"] = [{"ApiKey": []}]
