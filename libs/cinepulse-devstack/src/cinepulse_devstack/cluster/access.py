"""Reaching the release's services from this machine: ``kubectl proxy`` for HTTP (the API
server's service proxy picks a ready pod per request, so clients ride through a rolling
update) and ``kubectl port-forward`` for the databases' TCP protocols. Both listen on
loopback only."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from cinepulse_devstack.cluster.client import KubeClient
from cinepulse_devstack.procs import StackError


@contextlib.contextmanager
def _kubectl_listening(node: KubeClient, args: list[str], pattern: str) -> Iterator[int]:
    proc = subprocess.Popen(
        [node.tool("kubectl"), *args],
        env=node.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            m = re.search(pattern, line)
            if m:
                yield int(m.group(1))
                return
        raise StackError(f"kubectl {args[0]} did not start: {''.join(seen)[-800:]}")
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.poll() is None:
            proc.kill()


@contextlib.contextmanager
def api_proxy(node: KubeClient) -> Iterator[str]:
    """``http://127.0.0.1:<port>``: the API server, authenticated as the admin."""
    args = ["proxy", "--port=0", "--address=127.0.0.1"]
    with _kubectl_listening(node, args, r"127\.0\.0\.1:(\d+)") as port:
        yield f"http://127.0.0.1:{port}"


def service_url(proxy: str, namespace: str, service: str, port: int) -> str:
    """A Service's HTTP root through the API server's service proxy."""
    return f"{proxy}/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy"


@contextlib.contextmanager
def port_forward(node: KubeClient, namespace: str, target: str, port: int) -> Iterator[int]:
    """A loopback port forwarded to ``target`` (``svc/NAME`` or ``pod/NAME``) ``port``."""
    args = ["port-forward", "-n", namespace, target, f":{port}", "--address=127.0.0.1"]
    with _kubectl_listening(node, args, r"127\.0\.0\.1:(\d+) ->") as local:
        yield local


def secret_value(node: KubeClient, namespace: str, name: str, key: str) -> str:
    out = node.kubectl("get", "secret", "-n", namespace, name, "-o", "json").stdout
    data = json.loads(out).get("data") or {}
    if key not in data:
        raise StackError(f"Secret {namespace}/{name} has no key {key!r}")
    return base64.b64decode(data[key]).decode()


def local_url(url: str, port: int) -> str:
    """``url`` (a DSN naming an in-cluster host) pointed at 127.0.0.1:``port`` instead."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{port}"))
