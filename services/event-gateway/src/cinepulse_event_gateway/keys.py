"""Per-client write keys, loaded from a mounted Secret (files) and/or the environment.

A key is never kept in memory in the clear: each one is stored as its SHA-256 digest and a
presented key is hashed and compared with :func:`hmac.compare_digest` against *every*
stored digest, so the time taken says nothing about which client (if any) matched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from cinepulse_common.logging import get_logger

log = get_logger(__name__)


class WriteKeyError(ValueError):
    """The key source is unusable (missing path, malformed file, empty key)."""


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
            raise WriteKeyError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise WriteKeyError(f"{path}: expected a JSON object of client id -> key strings")
        return data
    raise WriteKeyError(f"{path}: no such file or directory")


class WriteKeys:
    def __init__(
        self,
        keys: Mapping[str, SecretStr] | None = None,
        path: Path | None = None,
        reload_interval_s: float = 10.0,
    ) -> None:
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
            except (WriteKeyError, OSError) as exc:
                if initial:
                    raise WriteKeyError(str(exc)) from None
                log.error("write keys not reloaded; keeping the previous set", error=str(exc))
                return
            empty += [c for c, k in from_path.items() if not k]
            merged |= {c: _digest(k) for c, k in from_path.items() if k}
        if empty:
            msg = f"empty write key for client(s): {', '.join(sorted(set(empty)))}"
            if initial:
                raise WriteKeyError(msg)
            log.error("write keys not reloaded; keeping the previous set", error=msg)
            return
        self._digests = sorted(merged.items())
        self._stamp = self._path_stamp()
        if not initial:
            log.info("write keys reloaded", clients=len(self._digests))

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
