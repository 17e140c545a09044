"""The cluster: a kwokctl one (binary runtime), and what the checks need of any cluster."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cinepulse_devstack import chart
from cinepulse_devstack.kube.binaries import bin_dir, binary, kube_version
from cinepulse_devstack.kube.constants import APISERVER_PORT, CLUSTER, ETCD_PORT
from cinepulse_devstack.procs import StackError


class StepFailed(StackError):
    """A step of an end-to-end run failed; the message says what was seen."""


def _run(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        list(args),
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if r.returncode:
        raise StepFailed(
            f"{' '.join(args[:4])} ... exited {r.returncode}: {(r.stderr or r.stdout).strip()[-3000:]}"
        )
    return r


class ClusterClient(Protocol):
    """What the checks below need of a cluster: the kwok one here, or the real node of
    :mod:`cinepulse_devstack.cluster`."""

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]: ...

    def get(self, *args: str) -> list[dict[str, Any]]: ...


@dataclass
class KwokCluster:
    """A kwokctl cluster (binary runtime) whose state lives in ``workdir``."""

    workdir: Path
    name: str = CLUSTER

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KWOK_WORKDIR": str(self.workdir / "kwok"),
                "KWOK_RUNTIME": "binary",
                "KWOK_KUBE_VERSION": kube_version(),
                # every binary kwokctl may want resolves to a local file, never a URL
                "KWOK_KUBE_BINARY_PREFIX": str(bin_dir()),
                "KWOK_KUBECTL_BINARY": binary("kubectl"),
                "KWOK_KUBE_APISERVER_BINARY": binary("kube-apiserver"),
                "KWOK_KUBE_CONTROLLER_MANAGER_BINARY": binary("kube-controller-manager"),
                "KWOK_KUBE_SCHEDULER_BINARY": binary("kube-scheduler"),
                "KWOK_CONTROLLER_BINARY": binary("kwok"),
                "KWOK_ETCD_BINARY": binary("etcd"),
                # a download that slips through fails at once (nothing listens on port 9)
                "HTTP_PROXY": "http://127.0.0.1:9",
                "HTTPS_PROXY": "http://127.0.0.1:9",
                "NO_PROXY": "127.0.0.1,localhost",
                "KUBECONFIG": str(self.kubeconfig),
            }
        )
        return env

    def kwokctl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _run(
            [binary("kwokctl"), "--name", self.name, *args], env=self.env(), timeout=timeout
        )

    def create(self) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.delete()  # a cluster left by an interrupted run
        out = self.kwokctl(
            "create",
            "cluster",
            "--runtime",
            "binary",
            "--kube-apiserver-port",
            str(APISERVER_PORT),
            "--etcd-port",
            str(ETCD_PORT),
            "--kube-apiserver-binary",
            binary("kube-apiserver"),
            "--kube-controller-manager-binary",
            binary("kube-controller-manager"),
            "--kube-scheduler-binary",
            binary("kube-scheduler"),
            "--kwok-controller-binary",
            binary("kwok"),
            "--etcd-binary",
            binary("etcd"),
            "--kubeconfig",
            str(self.kubeconfig),
            "--quiet-pull",
            "--wait",
            "3m",
            timeout=360,
        )
        log = out.stdout + out.stderr
        if "Download" in log:  # kwokctl logs every fetch it starts
            raise StepFailed(f"kwokctl tried to download something: {log[-2000:]}")
        v = json.loads(self.kubectl("version", "-o", "json").stdout)
        return f"server {v['serverVersion']['gitVersion']}, https://127.0.0.1:{APISERVER_PORT}"

    def delete(self) -> None:
        if (self.workdir / "kwok" / "clusters" / self.name).exists():
            subprocess.run(
                [
                    binary("kwokctl"),
                    "--name",
                    self.name,
                    "delete",
                    "cluster",
                    "--kubeconfig",
                    str(self.kubeconfig),
                ],
                env=self.env(),
                capture_output=True,
                text=True,
                check=False,
                timeout=180,
            )

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return _run([binary("kubectl"), *args], env=self.env(), stdin=stdin, timeout=timeout)

    def helm(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return _run([chart.tool("helm"), *args], env=self.env(), timeout=timeout)

    def get(self, *args: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)[
            "items"
        ]
        return items
