"""Settings of event-gateway (``CINEPULSE_*`` variables; nested blocks use ``__``).

Examples: ``CINEPULSE_KAFKA__BOOTSTRAP_SERVERS=kafka:9092``,
``CINEPULSE_AUTH__KEYS_PATH=/var/run/secrets/cinepulse/write-keys`` (a mounted Secret: one
file per client, the file name is the client id and the content its key),
``CINEPULSE_LIMITS__MAX_BATCH_EVENTS=500``, ``CINEPULSE_LIMITS__MAX_CONCURRENT_REQUESTS=256``,
``CINEPULSE_LIMITS__BODY_READ_TIMEOUT_S=10``, ``CINEPULSE_RATE_LIMIT='2000/10 seconds'``,
``CINEPULSE_RATE_LIMITS='{"backend": "unlimited", "ios": "500/10 seconds"}'``,
``CINEPULSE_AUTH__WRITE_ROLES='{"backend": "server"}'`` (a key not listed is ``frontend``: its
events must be for the user of its ``X-User-Token``), ``CINEPULSE_AUTH__USER_TOKEN_SECRET``
(the api's).
"""

from __future__ import annotations

from typing import Any, Literal

from limits import RateLimitItem
from pydantic import BaseModel, Field, model_validator

from cinepulse_common.access import UserTokenSettings
from cinepulse_common.apikeys import ApiKeySettings
from cinepulse_common.ratelimit import parse_rate_limit as parse_limit
from cinepulse_common.settings import CinepulseSettings, KafkaSettings, metrics_port_field

#: each write key's events per pod unless configured otherwise (docs/operations/security.md:
#: the reason for the figure): 100 events a second on average, counted over 10 seconds so that
#: a full batch (``limits.max_batch_events``, 500) fits in it
DEFAULT_RATE_LIMIT = "1000/10 seconds"
#: each signed-in user's events through a frontend key, per pod: a person clicking and
#: watching sends about one event a second; like a key's limit it must let a full batch through
#: (a page's queued events flushed at once), so it is a full batch per 10 s: one user can
#: spend at most half of a key's default (raise the key's for a real audience)
DEFAULT_USER_RATE_LIMIT = "500/10 seconds"


def parse_rate_limit(value: str, name: str) -> RateLimitItem | None:
    """``'1000/10 seconds'`` -> its limit; ``'unlimited'``/``'none'`` -> ``None``; else an error
    naming the setting (the shared rules: :func:`cinepulse_common.ratelimit.parse_rate_limit`;
    events are counted here)."""
    return parse_limit(value, name, unit="event", examples="'1000/10 seconds', '6000/minute'")


#: what a write key may assert: ``frontend``, only the user of the request's user token;
#: ``server`` (a backend relaying its users' events), any user
WriteRole = Literal["frontend", "server"]
#: the role of a write key that ``auth.write_roles`` does not list: the least privileged
DEFAULT_WRITE_ROLE: WriteRole = "frontend"


class AuthSettings(UserTokenSettings, ApiKeySettings):
    """The write keys (``keys``, ``keys_path``: see :class:`ApiKeySettings`), each one's role,
    and the user tokens a frontend key's requests carry (the api's block,
    :class:`~cinepulse_common.access.UserTokenSettings`: the same secret)."""

    enabled: bool = Field(True, description="require a write key on every event request")
    header: str = Field("X-Write-Key", description="request header carrying the write key")
    write_roles: dict[str, WriteRole] = Field(
        default_factory=dict,
        description="client id -> role: frontend (a browser's or an app's key, public in "
        "effect) must send the user token (user_token_header) and may send only that user's "
        "events; server (a backend relaying its users' events, the demo's replay) may send "
        "any user's; a client not listed is frontend",
    )

    @model_validator(mode="before")
    @classmethod
    def _not_the_read_roles(cls, data: Any) -> Any:
        # CINEPULSE_AUTH__ROLES is the api's and the recommender's (internal / frontend
        # readers): given to the gateway it would be either refused value by value or, worse,
        # read as write roles; say which variable the gateway takes instead
        if isinstance(data, dict) and "roles" in data:
            raise ValueError(
                "auth.roles (CINEPULSE_AUTH__ROLES) is the api's read roles, not the gateway's: "
                "give the write keys' roles (frontend or server) in auth.write_roles "
                "(CINEPULSE_AUTH__WRITE_ROLES; chart: gateway.auth.roles)"
            )
        return data

    def role_of(self, client: str) -> WriteRole:
        return self.write_roles.get(client, DEFAULT_WRITE_ROLE)


class LimitSettings(BaseModel):
    max_batch_events: int = Field(500, ge=1, le=100_000)
    max_body_bytes: int = Field(1 << 20, ge=1024, description="413 above this")
    body_read_timeout_s: float = Field(
        10.0,
        gt=0,
        description="longest time to receive a whole request body; a slower client gets 408",
    )
    max_concurrent_requests: int = Field(
        256,
        ge=1,
        description="requests handled at once per process (health, readiness and metrics "
        "aside); one more gets 503 with Retry-After at once",
    )
    produce_timeout_s: float = Field(
        5.0, gt=0, description="longest wait for Kafka's acknowledgement before answering 503"
    )
    retry_after_s: int = Field(
        5, ge=1, description="Retry-After sent with 503 (Kafka or the concurrency limit)"
    )
    max_in_flight_messages: int = Field(
        100_000, ge=1000, description="producer queue size; full queue answers 503"
    )


class EventGatewaySettings(CinepulseSettings):
    kafka: KafkaSettings
    auth: AuthSettings = AuthSettings()
    limits: LimitSettings = LimitSettings()
    rate_limit: str = Field(
        DEFAULT_RATE_LIMIT,
        description="each write key's limit unless rate_limits names it, e.g. "
        "'2000/10 seconds' or '10000/minute' (events, not requests: a batch counts each "
        "event), or 'unlimited'; at least limits.max_batch_events events (else refused at "
        "start: the key could never send a full batch); counted per pod (N replicas let a "
        "key send N times this)",
    )
    rate_limits: dict[str, str] = Field(
        default_factory=dict,
        description="client id -> its own limit, overriding rate_limit (JSON), e.g. "
        '{"backend": "unlimited", "ios": "500/10 seconds"}; \'unlimited\' (or \'none\') '
        "for server-side relays and benchmarks; each at least limits.max_batch_events events",
    )
    user_rate_limit: str = Field(
        DEFAULT_USER_RATE_LIMIT,
        description="each signed-in user's limit through a frontend write key (the user of "
        "its X-User-Token), on top of the key's own: one user cannot spend a shared key's "
        "budget for everyone else; e.g. '500/10 seconds', or 'unlimited'; at least "
        "limits.max_batch_events events (else refused at start); server keys are not "
        "counted per user; counted per pod",
    )
    cors_origins: list[str] = Field(default_factory=list, description="allowed browser origins")
    host: str = "0.0.0.0"  # noqa: S104 - listens inside its pod
    port: int = Field(8080, ge=1, le=65535)
    metrics_port: int = metrics_port_field()

    @model_validator(mode="after")
    def _rate_limits_parse(self) -> EventGatewaySettings:
        batch = self.limits.max_batch_events
        named = {"rate_limit": self.rate_limit, "user_rate_limit": self.user_rate_limit}
        named.update({f"rate_limits[{c!r}]": v for c, v in self.rate_limits.items()})
        for name, value in named.items():
            item = parse_rate_limit(value, name)
            if item is not None and item.amount < batch:
                raise ValueError(
                    f"{name} {value!r} allows {item.amount} events, fewer than "
                    f"limits.max_batch_events ({batch}): that key could never send a full "
                    f"batch; allow at least {batch} events (e.g. '{batch * 2}/10 seconds'), "
                    "or lower limits.max_batch_events"
                )
        return self

    def user_limit(self) -> RateLimitItem | None:
        """Each frontend user's limit; ``None`` = not counted per user."""
        return parse_rate_limit(self.user_rate_limit, "user_rate_limit")

    def limit_for(self, client: str) -> RateLimitItem | None:
        """``client``'s rate limit (its own, else the default); ``None`` = unlimited."""
        return parse_rate_limit(self.rate_limits.get(client, self.rate_limit), "rate_limit")
