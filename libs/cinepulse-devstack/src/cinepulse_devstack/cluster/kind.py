"""A kind cluster (Kubernetes in Docker) as the node provider, for users with Docker and for
the GitHub workflow (``scripts/kind.sh``, ``.github/workflows/kind-e2e.yaml``). The release's
steps are the local node's (:mod:`.e2e`, :mod:`.demo`): only how the cluster starts, how
images reach it (``kind load docker-image``), where claims find storage (kind's default
StorageClass) and how pods reach this machine (the ``kind`` Docker network's gateway)
differ. The project's machines have no Docker engine: this path has not run here
(docs/operations/cluster.md says what did).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from cinepulse_common.paths import default_cache
from cinepulse_devstack.cluster import images
from cinepulse_devstack.cluster.client import KubeClient, Say
from cinepulse_devstack.procs import StackError

#: the Prometheus operator's images and Traefik's, built FROM scratch like the local node's
MONITORING_BINARIES = (
    "prometheus-operator",
    "prometheus-config-reloader",
    "prometheus",
    "alertmanager",
    "traefik",
)


class Kind(KubeClient):
    provider = "kind"

    def __init__(self, name: str = "cinepulse") -> None:
        self.name = name
        self.home = default_cache() / "kind"

    def kubeconfig(self) -> Path:
        return self.home / f"{self.name}.kubeconfig"

    def tool(self, name: str) -> str:
        exe = shutil.which(name)
        if exe is None:
            raise StackError(f"{name} is not installed (the kind provider needs docker, kind, "
                             "kubectl and helm on PATH)")  # fmt: skip
        return exe

    def _kind(self, *args: str, timeout: float = 900) -> str:
        r = subprocess.run([self.tool("kind"), *args], capture_output=True, text=True,
                           check=False, timeout=timeout)  # fmt: skip
        if r.returncode:
            raise StackError(f"kind {' '.join(args[:2])}: {(r.stderr or r.stdout).strip()[-1500:]}")
        return r.stdout

    def exists(self) -> bool:
        return self.name in self._kind("get", "clusters").split()

    def bring_up(self, images_: Iterable[str], say: Say) -> None:
        self.tool("docker")
        if not self.exists():
            say(f"kind create cluster --name {self.name}")
            self._kind("create", "cluster", "--name", self.name, "--wait", "180s")
        self.home.mkdir(parents=True, exist_ok=True)
        self._kind(
            "export", "kubeconfig", "--name", self.name, "--kubeconfig", str(self.kubeconfig())
        )
        own = images.build_own_images(say, MONITORING_BINARIES, pause=False)
        refs = [*(images.binary_image(b) for b in MONITORING_BINARIES), *images_]
        n = self.load_images(refs, say)
        say(f"kind cluster {self.name}: {len(refs)} images on its node ({n} loaded, "
            f"{len(own)} built now); export KUBECONFIG={self.kubeconfig()}")  # fmt: skip

    def tear_down(self, say: Say) -> None:
        if self.exists():
            self._kind("delete", "cluster", "--name", self.name)
        say(f"kind cluster {self.name} deleted")

    def load_images(self, refs: Iterable[str], say: Say) -> int:
        refs = list(refs)
        for ref in refs:
            # kind compares the image id with the node's and skips what is there
            self._kind("load", "docker-image", "--name", self.name, ref)
            say(f"kind load docker-image {ref}")
        return len(refs)

    def provide_storage(self) -> str:
        classes = self.get("storageclasses")
        default = [c["metadata"]["name"] for c in classes if c["metadata"].get("annotations", {})
                   .get("storageclass.kubernetes.io/is-default-class") == "true"]  # fmt: skip
        if not default:
            raise StackError("the kind cluster has no default StorageClass for the claims")
        return f"claims bound by the default StorageClass {default[0]}"

    def host_address(self) -> str:
        r = subprocess.run([self.tool("docker"), "network", "inspect", "kind"],
                           capture_output=True, text=True, check=True)  # fmt: skip
        for cfg in json.loads(r.stdout)[0]["IPAM"]["Config"]:
            if "." in cfg.get("Gateway", ""):
                return str(cfg["Gateway"])
        raise StackError("the kind Docker network has no IPv4 gateway")

    def failure_file(self) -> Path:
        return self.home / f"{self.name}-failure.txt"
