"""Toxiproxy for the network fault drill: the server (built by ``make setup`` into the
project cache, ``~/.cache/cinepulse/bin/toxiproxy-server``), its HTTP API, and an event
gateway process of the drill's own whose Kafka traffic goes through a proxy.

A Kafka client connects to the broker's *advertised* address after the bootstrap, so a proxy
in front of the bootstrap address alone is bypassed. The drill gives the broker one more
listener (``Kafka.extra_listeners``) that advertises the proxy's address: a client that
bootstraps through the proxy is told to reach the broker at the proxy, and every later
connection of it goes through the proxy too; the other clients keep the usual listener.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from cinepulse_devstack import Stack
from cinepulse_devstack.chart import ChartToolMissing, tool
from cinepulse_devstack.procs import pid_alive, read_pid, spawn, terminate, wait_until
from cinepulse_devstack.services import EventGateway

BINARY = "toxiproxy-server"


def binary() -> str:
    """The server, found as the chart tools are (the project cache, else PATH)."""
    try:
        return tool(BINARY)
    except ChartToolMissing as exc:
        raise AssertionError(f"{exc} (scripts/setup.sh builds Toxiproxy v2.12.0)") from None


class Toxiproxy:
    """One ``toxiproxy-server`` process (its API on loopback) and calls to its HTTP API."""

    def __init__(self, folder: Path, api_port: int) -> None:
        self.folder = folder
        self.url = f"http://127.0.0.1:{api_port}"
        self.log = folder / "toxiproxy.log"
        self.pidfile = folder / "toxiproxy.pid"
        self.http = httpx.Client(base_url=self.url, timeout=5)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        port = self.url.rsplit(":", 1)[1]
        # -proxy-metrics: bytes per proxy and direction on /metrics (the traffic went through)
        cmd = [binary(), "-host", "127.0.0.1", "-port", port, "-proxy-metrics"]
        spawn(cmd, log=self.log, pidfile=self.pidfile)
        wait_until(
            lambda: self.http.get("/version").raise_for_status(),
            timeout_s=30,
            alive=lambda: pid_alive(read_pid(self.pidfile)),
            what="toxiproxy-server",
            log=self.log,
        )

    def stop(self) -> None:
        self.http.close()
        terminate(read_pid(self.pidfile), timeout_s=10)
        self.pidfile.unlink(missing_ok=True)

    def _ok(self, r: httpx.Response) -> Any:
        assert r.is_success, (
            f"toxiproxy {r.request.method} {r.request.url}: {r.status_code} {r.text}"
        )
        return r.json() if r.content else None

    def create_proxy(self, name: str, listen: str, upstream: str) -> dict[str, Any]:
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        return dict(self._ok(self.http.post("/proxies", json=body)))

    def proxy(self, name: str) -> dict[str, Any]:
        return dict(self._ok(self.http.get(f"/proxies/{name}")))

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Disabled, the proxy closes every connection and refuses new ones (a cut)."""
        self._ok(self.http.post(f"/proxies/{name}", json={"enabled": enabled}))

    def add_toxic(self, proxy: str, name: str, kind: str, stream: str, **attributes: int) -> None:
        body = {"name": name, "type": kind, "stream": stream, "toxicity": 1.0}
        self._ok(self.http.post(f"/proxies/{proxy}/toxics", json=body | {"attributes": attributes}))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._ok(self.http.delete(f"/proxies/{proxy}/toxics/{name}"))

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return list(self._ok(self.http.get(f"/proxies/{proxy}/toxics")))

    def bytes_through(self, proxy: str) -> float:
        """Bytes the proxy carried, both directions (its Prometheus counters)."""
        text = self.http.get("/metrics").text
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name.startswith("toxiproxy_proxy_")
            and s.name.endswith("bytes_total")
            and s.labels.get("proxy") == proxy
        )


class ProxiedGateway(EventGateway):
    """A second event gateway process on the drill's stack, its producer's bootstrap the
    proxy: the stack's own gateway is left alone for the other drills. Same write keys (the
    demo key sends), not scraped by the stack's Prometheus (its labels are the gateway's)."""

    name = "event-gateway-proxied"
    scraped = False

    def __init__(self, stack: Stack, port: int, bootstrap: str) -> None:
        env = {"CINEPULSE_KAFKA__BOOTSTRAP_SERVERS": bootstrap}
        super().__init__(stack.cfg, lambda: stack.infra_env() | env, stack.prometheus)
        self._port = port

    @property
    def port(self) -> int:
        return self._port

    @property
    def metrics_port(self) -> int | None:
        """None: its /metrics on its own port, where the drill reads it (the stack's gateway
        holds the gateway's metrics port)."""
        return None

    @property
    def distribution(self) -> str:
        return "cinepulse-event-gateway"

    def start_and_wait(self, timeout_s: float = 60) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.start()
        wait_until(
            self.probe, timeout_s=timeout_s, alive=self.alive, what=self.name, log=self.log_path
        )
