"""Settings of the explorer (``CINEPULSE_*`` variables; nested blocks use ``__``).

Examples: ``CINEPULSE_POSTGRES__DSN=postgresql://explorer:...@postgres:5432/cinepulse`` (a
LOGIN role that is a member of ``cinepulse_readonly``), ``CINEPULSE_RECOMMENDER_URL=
http://recommender:8000``, ``CINEPULSE_RECOMMENDER_API_KEY=...`` (the explorer's key among
the api's and the recommender's, an ``internal`` client), ``CINEPULSE_CACHE_TTL_S=300``.

Login (:mod:`cinepulse_explorer.auth`): ``CINEPULSE_OIDC__SERVER_METADATA_URL``,
``CINEPULSE_OIDC__CLIENT_ID``, ``CINEPULSE_OIDC__CLIENT_SECRET``, ``CINEPULSE_OIDC__REDIRECT_URI``
and ``CINEPULSE_OIDC__COOKIE_SECRET`` together (one of them alone is refused, naming the
others); none of them: no login (reach it only through a port-forward).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator

from cinepulse_common.settings import CinepulseSettings, PostgresSettings, metrics_port_field


class OidcSettings(BaseModel):
    """Streamlit's OIDC login (``st.login()``), written to its ``[auth]`` secrets at start."""

    server_metadata_url: str = Field(
        pattern=r"^https?://",
        description="the login's provider: its discovery document, e.g. "
        "https://idp.example.com/realms/cinepulse/.well-known/openid-configuration; required "
        "(as the next four) only for the login: none of them set, no login",
    )
    client_id: str = Field(min_length=1, description="the explorer's client id at the provider")
    client_secret: SecretStr = Field(description="its client secret")
    redirect_uri: str = Field(
        pattern=r"^https?://.+/oauth2callback$",
        description="the explorer's public URL + /oauth2callback (registered at the provider)",
    )
    cookie_secret: SecretStr = Field(
        description="signs the login cookie: a random string of 32+ characters",
    )
    internal_claim: str = Field(
        "groups",
        min_length=1,
        description="the ID token claim that makes a user internal (a string or a list)",
    )
    internal_value: str = Field(
        "cinepulse-internal",
        min_length=1,
        description="the value of internal_claim (or one of its values) of an internal user, "
        "who alone sees the User tab (any user's activity and recommendations)",
    )

    @field_validator("cookie_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        # shorter keys are weak for the HMAC that signs the login cookie
        if len(value.get_secret_value()) < 32:
            raise ValueError("needs at least 32 characters")
        return value


class ExplorerSettings(CinepulseSettings):
    postgres: PostgresSettings
    oidc: OidcSettings | None = Field(
        None,
        description="the login (all of server_metadata_url, client_id, client_secret, "
        "redirect_uri, cookie_secret); unset: no login, every visitor sees every page",
    )
    address: str = Field(
        "0.0.0.0",  # noqa: S104 - listens inside its pod
        description="listen address of the Streamlit server",
    )
    port: int = Field(8501, ge=1, le=65535)
    metrics_port: int = metrics_port_field()
    cache_ttl_s: int = Field(60, ge=1, description="how long a query's result is reused (seconds)")
    recommender_url: str = Field(
        "http://127.0.0.1:8001",
        description="base URL of the recommender, whose /api/recommendations the user page shows",
    )
    recommender_api_key: SecretStr | None = Field(
        None,
        description="the explorer's API key, sent to the recommender as X-API-Key: a key of "
        "the api's key set (CINEPULSE_AUTH__KEYS_PATH) whose client is internal, as the "
        "explorer shows any user's recommendations; unset: no key is sent (a recommender "
        "checking keys answers 401)",
    )
    recommender_key_header: str = Field(
        "X-API-Key", description="the header carrying it (the recommender's CINEPULSE_AUTH__HEADER)"
    )
    recommender_timeout_s: float = Field(
        2.0, gt=0, le=30, description="deadline of each request to the recommender (seconds)"
    )
    bayes_prior_votes: float = Field(
        10.0,
        ge=0,
        description="m of the Bayesian average ranking the top movies (as in /api/top_movies)",
    )
