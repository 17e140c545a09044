"""The explorer's login: Streamlit's own OIDC client (``st.login()``), on when the settings
have an ``oidc`` block.

Streamlit reads the client's configuration only from its secrets (the ``[auth]`` section), so
``cinepulse-explorer`` writes them, at start, to a ``secrets.toml`` of its own in a fresh
private directory (mode 0700, the file 0600) and points ``--secrets.files`` at it: the
secrets never reach a command line, an environment Streamlit logs, or the working directory.

The page (:func:`gate`) then shows a visitor who is not logged in the login button alone,
before any query runs; the User tab (any user's activity and recommendations) needs the
internal role: the ID token claim ``internal_claim`` equal to, or a list holding,
``internal_value``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from cinepulse_explorer.settings import OidcSettings

#: what a user without the internal role sees instead of the User tab
NEEDS_INTERNAL = (
    "The User tab needs the internal role: it shows any user's activity and "
    "recommendations. Ask an administrator to add you to it."
)


def _toml_string(value: str) -> str:
    # a JSON string is a valid TOML basic string (same quotes and escapes)
    return json.dumps(value)


def secrets_toml(oidc: OidcSettings) -> str:
    """The ``[auth]`` section Streamlit's ``st.login()`` reads (the default provider)."""
    entries = {
        "redirect_uri": oidc.redirect_uri,
        "cookie_secret": oidc.cookie_secret.get_secret_value(),
        "client_id": oidc.client_id,
        "client_secret": oidc.client_secret.get_secret_value(),
        "server_metadata_url": oidc.server_metadata_url,
    }
    lines = ["[auth]", *(f"{key} = {_toml_string(value)}" for key, value in entries.items())]
    return "\n".join(lines) + "\n"


def write_secrets(oidc: OidcSettings, parent: Path | None = None) -> Path:
    """Write :func:`secrets_toml` to a new private directory; the file's path."""
    directory = Path(tempfile.mkdtemp(prefix="cinepulse-explorer-", dir=parent))  # mode 0700
    path = directory / "secrets.toml"
    # created 0600 before anything is written: never readable by another user
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secrets_toml(oidc))
    return path


def is_internal(claims: Mapping[str, Any], oidc: OidcSettings) -> bool:
    """Whether the ID token's claims give the internal role."""
    value = claims.get(oidc.internal_claim)
    if isinstance(value, str):
        return value == oidc.internal_value
    if isinstance(value, list | tuple):
        return oidc.internal_value in value
    return False


def gate(oidc: OidcSettings | None) -> bool:
    """Stop the page unless the visitor is logged in (with ``oidc`` set); whether the viewer
    may see the User tab. Without ``oidc``: no login, and every page (the chart then admits
    no one from outside the namespace)."""
    if oidc is None:
        return True
    # fail closed: anything but a True login flag is a visitor who is not logged in
    if st.user.get("is_logged_in") is not True:
        st.info("Log in to explore the Cinepulse warehouse.")
        st.button("Log in", key="login", type="primary", on_click=st.login)
        st.stop()
    claims = st.user.to_dict()
    who = claims.get("email") or claims.get("name") or claims.get("sub") or "?"
    with st.sidebar:
        st.caption(f"Logged in as {who}")
        st.button("Log out", key="logout", on_click=st.logout)
    return is_internal(claims, oidc)
