"""The services' LOGIN roles of migration 0012's groups, made after the migrations by the
same job (the chart's migrations Job: the passwords come from its generated Secret)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import psycopg

from cinepulse_common.postgres import ensure_login_role

#: service -> (its group role of migration 0012, whether its sessions default to read-only)
SERVICES: dict[str, tuple[str, bool]] = {
    "api": ("cinepulse_api", True),
    "explorer": ("cinepulse_explorer", True),
    "recommender": ("cinepulse_recommender", False),
    "spark": ("cinepulse_spark", False),
    "fallback": ("cinepulse_fallback", False),
    "fetcher": ("cinepulse_fetcher", False),
    "quality": ("cinepulse_quality", True),
}
#: a service's password in the environment: CINEPULSE_LOGIN_PASSWORD__API, ...
ENV_PREFIX = "CINEPULSE_LOGIN_PASSWORD__"


def login_name(service: str) -> str:
    return f"cinepulse_{service}_login"


def passwords_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The services whose password is set (an unknown service's variable is an error: a
    typo would otherwise leave a service without its login)."""
    env = os.environ if environ is None else environ
    found = {
        k.removeprefix(ENV_PREFIX).lower(): v
        for k, v in env.items()
        if k.startswith(ENV_PREFIX) and v
    }
    unknown = sorted(set(found) - set(SERVICES))
    if unknown:
        raise ValueError(f"no service role for {', '.join(unknown)} (known: {', '.join(SERVICES)})")
    return found


def ensure_service_logins(dsn: str, passwords: Mapping[str, str]) -> list[str]:
    """Each service's login made, or its password reset, a member of its group only;
    returns the logins. ``dsn``: the migrating role (it may create roles)."""
    made = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for service, password in sorted(passwords.items()):
            group, read_only = SERVICES[service]
            ensure_login_role(
                conn, login_name(service), password, member_of=group, read_only=read_only
            )
            made.append(login_name(service))
    return made
