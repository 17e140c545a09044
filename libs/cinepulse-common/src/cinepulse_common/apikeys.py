"""Per-client API keys, loaded from a mounted Secret (files) and/or the environment: the
event gateway's write keys and the read keys of the serving api and the recommender.

A key is never kept in memory in the clear: each one is stored as its SHA-256 digest and a
presented key is hashed and compared with :func:`hmac.compare_digest` against *every*
stored digest, so the time taken says nothing about which client (if any) matched.

A service's settings embed :class:`ApiKeySettings` (``CINEPULSE_AUTH__KEYS``,
``CINEPULSE_AUTH__KEYS_PATH``, ``CINEPULSE_AUTH__RELOAD_INTERVAL_S``) and build one
:class:`ApiKeys` from it (:meth:`ApiKeys.from_settings`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from cinepulse_common.logging import get_logger

log = get_logger(__name__)


class ApiKeyError(ValueError):
    """The key source is unusable (missing path, malformed file, empty key)."""


class ApiKeySettings(BaseModel):
    """Where a service's client keys come from (both sources may be used; the path wins)."""

    keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="client id -> key (JSON in the environment)"
    )
    keys_path: Path | None = Field(
        None,
        description="a mounted Secret: a directory with one file per client (name = client "
        "id, content = key) or a JSON file {client: key}; re-read when it changes",
    )
    reload_interval_s: float = Field(10.0, ge=0, description="how often keys_path is re-checked")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def read_keys_path(path: Path) -> dict[str, str]:
    """A directory (one file per client) or a JSON object file ``{client: key}``."""
    if path.is_dir():
        keys = {}
        for f in sorted(path.iterdir()):
            # Kubernetes Secret volumes hold ..data symlinks and hidden timestamped dirs
            if f.name.startswith(".") or not f.is_file():
                continue
            keys[f.name] = f.read_text(encoding="utf-8").strip()
        return keys
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ApiKeyError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ApiKeyError(f"{path}: expected a JSON object of client id -> key strings")
        return data
    raise ApiKeyError(f"{path}: no such file or directory")


class ApiKeys:
    """The key set: ``client_for(presented)`` names the client owning a key.

    ``kind`` names the keys in error messages and logs (``"write key"`` in the gateway)."""

    def __init__(
        self,
        keys: Mapping[str, SecretStr] | None = None,
        path: Path | None = None,
        reload_interval_s: float = 10.0,
        *,
        kind: str = "API key",
    ) -> None:
        self.kind = kind
        # only digests are kept: SecretStr values are hashed here and never stored
        self._static = {c: _digest(k.get_secret_value()) for c, k in (keys or {}).items()}
        self._static_empty = [c for c, k in (keys or {}).items() if not k.get_secret_value()]
        self._path = path
        self._interval = reload_interval_s
        self._lock = threading.Lock()
        self._stamp: float | None = None
        self._checked = 0.0
        self._digests: list[tuple[str, bytes]] = []
        self._load(initial=True)

    @classmethod
    def from_settings(cls, s: ApiKeySettings, *, kind: str = "API key") -> ApiKeys:
        return cls(s.keys, s.keys_path, s.reload_interval_s, kind=kind)

    @property
    def clients(self) -> list[str]:
        return [c for c, _ in self._digests]

    def _path_stamp(self) -> float | None:
        if self._path is None:
            return None
        try:
            stamps = [self._path.stat().st_mtime]
            if self._path.is_dir():
                stamps += [f.stat().st_mtime for f in self._path.iterdir()]
            return max(stamps)
        except OSError:
            return None

    def _load(self, initial: bool = False) -> None:
        merged = dict(self._static)
        empty = list(self._static_empty)
        if self._path is not None:
            try:
                from_path = read_keys_path(self._path)
            except (ApiKeyError, OSError) as exc:
                if initial:
                    raise ApiKeyError(str(exc)) from None
                log.error(f"{self.kind}s not reloaded; keeping the previous set", error=str(exc))
                return
            empty += [c for c, k in from_path.items() if not k]
            merged |= {c: _digest(k) for c, k in from_path.items() if k}
        if empty:
            msg = f"empty {self.kind} for client(s): {', '.join(sorted(set(empty)))}"
            if initial:
                raise ApiKeyError(msg)
            log.error(f"{self.kind}s not reloaded; keeping the previous set", error=msg)
            return
        self._digests = sorted(merged.items())
        self._stamp = self._path_stamp()
        if not initial:
            log.info(f"{self.kind}s reloaded", clients=len(self._digests))

    def _maybe_reload(self) -> None:
        if self._path is None:
            return
        now = time.monotonic()
        if now - self._checked < self._interval:
            return
        with self._lock:
            if now - self._checked < self._interval:
                return
            self._checked = now
            if self._path_stamp() != self._stamp:
                self._load()

    def client_for(self, presented: str | None) -> str | None:
        """The client id owning ``presented``, or ``None``; constant time in the key."""
        self._maybe_reload()
        if not presented:
            return None
        candidate = _digest(presented)
        found = None
        for client, digest in self._digests:
            if hmac.compare_digest(candidate, digest):
                found = client
        return found
