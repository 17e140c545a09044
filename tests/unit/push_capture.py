"""A local HTTP endpoint that records what a job pushes the way the Pushgateway takes it
(PUT or POST /metrics/job/<job>/<label>/<value>..., the exposition format): for unit tests of what is
pushed; the integration tests push to the real Pushgateway of the local stack."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest


@dataclass
class Pushes:
    url: str
    received: list[tuple[str, str, bytes]] = field(default_factory=list)


@pytest.fixture
def pushgateway() -> Iterator[Pushes]:
    pushes = Pushes(url="")

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            pushes.received.append((self.command, self.path, body))
            self.send_response(200)
            self.end_headers()

        do_PUT = do_POST = _record  # the http.server API: replace (PUT), add (POST)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    pushes.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield pushes
    server.shutdown()
