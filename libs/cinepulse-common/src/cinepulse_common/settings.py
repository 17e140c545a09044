"""Settings: one ``BaseSettings`` subclass per service, built on :class:`CinepulseSettings`.

Component blocks (:class:`KafkaSettings`, :class:`PostgresSettings`, :class:`MongoSettings`)
are nested models; a service declares the blocks it needs as fields *without defaults*, so
a missing value fails at start-up with a message that names the variable, e.g.
``CINEPULSE_POSTGRES__DSN``. Nested values use ``__`` as the delimiter.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "CINEPULSE_"

#: secrets that must never reach production (the chart's placeholders, docs' examples)
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "password", "cinepulse"})


#: the SASL mechanisms every Kafka client of Cinepulse (librdkafka, faust's aiokafka, Spark's
#: Java client) can use with a username and password
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSettings(BaseModel):
    """How every Cinepulse client reaches Kafka. The clients' own options (librdkafka's,
    faust's credentials, Spark's ``kafka.*``) are all built from this one block in
    :mod:`cinepulse_common.kafka`; TLS verifies the brokers against the system's CAs."""

    bootstrap_servers: str = Field(description="host:port[,host:port...]")
    client_id: str = "cinepulse"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="SSL and SASL_SSL verify the brokers against the system CAs"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="required with SASL_PLAINTEXT and SASL_SSL"
    )
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    #: prefix prepended to every topic name (tests use it for isolation; empty in production)
    topic_prefix: str = ""

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaSettings:
        if not self.uses_sasl:
            return self
        missing = [
            name
            for name, value in (
                ("sasl_mechanism", self.sasl_mechanism),
                ("sasl_username", self.sasl_username),
                ("sasl_password", self.sasl_password),
            )
            if value is None
        ]
        if missing:
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism (one of "
                f"{', '.join(SASL_MECHANISMS)}), sasl_username and sasl_password "
                "(CINEPULSE_KAFKA__SASL_MECHANISM, __SASL_USERNAME, __SASL_PASSWORD); "
                f"missing: {', '.join(missing)}"
            )
        return self


class PostgresSettings(BaseModel):
    dsn: SecretStr = Field(description="libpq URI, e.g. postgresql://user:pw@host:5432/cinepulse")
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(10, ge=1)
    statement_timeout_ms: int = Field(30_000, ge=0)
    application_name: str = "cinepulse"


class MongoSettings(BaseModel):
    url: SecretStr = Field(description="mongodb://host:port/")
    database: str = "raw"
    server_selection_timeout_ms: int = Field(5_000, ge=100)


def metrics_port_field() -> Any:
    """The ``metrics_port`` of a long-running service's settings (``CINEPULSE_METRICS_PORT``):
    ``/metrics`` on a port of its own, so a NetworkPolicy can admit Prometheus there and
    nowhere else; 0 (the default, for local runs and tests) keeps it on the HTTP port. The
    chart always sets it."""
    return Field(
        0,
        ge=0,
        le=65535,
        description="port of /metrics alone (not served on the HTTP port then); 0: /metrics "
        "on the HTTP port",
    )


class CinepulseSettings(BaseSettings):
    """Base for every service's settings class."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    environment: Literal["development", "test", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    docs_enabled: bool | None = Field(
        None,
        description="serve /docs, /redoc and /openapi.json (HTTP services); unset: only "
        "when environment is development",
    )

    @property
    def docs_served(self) -> bool:
        """Whether an HTTP service serves its API documentation: ``docs_enabled`` if set,
        otherwise only in development (the document maps every route and parameter)."""
        if self.docs_enabled is None:
            return self.environment == "development"
        return self.docs_enabled

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> CinepulseSettings:
        if self.environment != "production":
            return self
        for path, secret in _secrets(self):
            if secret.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(f"{path} holds a placeholder secret; set a real one in production")
            if _password_in_uri(secret.get_secret_value()) in PLACEHOLDER_SECRETS:
                raise ValueError(f"{path} has a placeholder password; set a real one in production")
        return self


def _secrets(model: BaseModel, prefix: str = "") -> list[tuple[str, SecretStr]]:
    found: list[tuple[str, SecretStr]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{prefix}{name}"
        if isinstance(value, SecretStr):
            found.append((path, value))
        elif isinstance(value, BaseModel):
            found.extend(_secrets(value, f"{path}."))
    return found


def _password_in_uri(uri: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        password = urlsplit(uri).password
    except ValueError:
        return None
    return password.lower() if password else None


S = TypeVar("S", bound=CinepulseSettings)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings or exit with a readable message naming each missing/bad variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = [f"invalid configuration for {cls.__name__}:"]
        for err in exc.errors():
            loc = "__".join(str(p) for p in err["loc"]).upper()
            var = f"{ENV_PREFIX}{loc}" if loc else cls.__name__
            lines.append(f"  {var}: {err['msg']}")
        raise SystemExit("\n".join(lines)) from None
