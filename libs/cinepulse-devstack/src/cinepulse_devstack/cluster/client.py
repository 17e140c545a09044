"""What the release's steps (install, checks, the demo) need of a cluster, whichever node
provider made it: this machine's own node (:class:`~.node.Node`) or a kind cluster
(:class:`~.kind.Kind`). Each provider answers the same calls: ``kubectl``/``helm`` with its
kubeconfig, how images get onto its node(s) without a registry, where the chart's
claims find storage, and the address at which pods reach a server on this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cinepulse_devstack import chart
from cinepulse_devstack.kube import StepFailed

Say = Callable[[str], None]


class KubeClient(ABC):
    #: the provider's name (``--provider``)
    provider: str = ""

    @abstractmethod
    def kubeconfig(self) -> Path:
        """The admin kubeconfig."""

    @abstractmethod
    def tool(self, name: str) -> str:
        """The path of ``kubectl`` (and the node's other binaries)."""

    @abstractmethod
    def bring_up(self, images: Iterable[str], say: Say) -> None:
        """The cluster running (idempotent) with ``images`` on its node(s)."""

    @abstractmethod
    def tear_down(self, say: Say) -> None:
        """The cluster gone, and the host as it was."""

    @abstractmethod
    def load_images(self, refs: Iterable[str], say: Say) -> int:
        """Put locally built images on the node(s); returns how many were loaded now."""

    @abstractmethod
    def provide_storage(self) -> str:
        """What binds the chart's PersistentVolumeClaims; returns a line saying so."""

    @abstractmethod
    def host_address(self) -> str:
        """The address at which pods reach a server listening on this machine."""

    @abstractmethod
    def failure_file(self) -> Path:
        """Where the cluster's state is written when a run fails."""

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig())}

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [self.tool("kubectl"), *args],
            input=stdin,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and r.returncode:
            raise StepFailed(f"kubectl {' '.join(args[:3])}: {(r.stderr or r.stdout).strip()}")
        return r

    def get(self, *args: str) -> list[dict[str, Any]]:
        out = self.kubectl("get", *args, "-o", "json").stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    def helm(self, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [chart.tool("helm"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if r.returncode:
            raise StepFailed(f"helm {' '.join(args[:2])}: {(r.stderr or r.stdout).strip()[-3000:]}")
        return r
