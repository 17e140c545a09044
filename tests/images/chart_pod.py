"""A StatefulSet of the rendered chart run by podman as Kubernetes would run its pod (see
test_dep_images.py): its user and group, read-only root, dropped capabilities, env with the
Secret's values, emptyDirs as tmpfs owned by the user (fsGroup's effect), the data claim
as a podman volume; on the host network."""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

START_TIMEOUT_S = 120


class Pod:
    """One StatefulSet's container, run by podman as the chart runs it."""

    def __init__(self, podman: list[str], docs: list[dict[str, Any]], component: str) -> None:
        self.podman, self.docs = podman, docs
        self.sts = next(
            d
            for d in docs
            if d["kind"] == "StatefulSet"
            and d["spec"]["template"]["spec"]["containers"][0]["name"] == component
        )
        self.spec = self.sts["spec"]["template"]["spec"]
        self.container: dict[str, Any] = self.spec["containers"][0]
        self.name = f"cinepulse-deps-test-{component}-{uuid.uuid4().hex[:8]}"
        self.volumes: list[str] = []

    def secret(self, ref: dict[str, str]) -> str:
        doc = next(
            d for d in self.docs if d["kind"] == "Secret" and d["metadata"]["name"] == ref["name"]
        )
        return base64.b64decode(doc["data"][ref["key"]]).decode()

    def password_secret(self, key: str) -> str:
        """Another key (dsn, url) of the Secret that holds the password variable's value."""
        ref = next(
            e["valueFrom"]["secretKeyRef"] for e in self.container["env"] if "valueFrom" in e
        )
        return self.secret({"name": ref["name"], "key": key})

    def env(self) -> dict[str, str]:
        return {
            e["name"]: e["value"] if "value" in e else self.secret(e["valueFrom"]["secretKeyRef"])
            for e in self.container.get("env", [])
        }

    def start(self, env: dict[str, str], *, read_only: bool | None = None) -> None:
        """``read_only``: the root filesystem's mode, if not the chart's."""
        pod_sc, sc = self.spec["securityContext"], self.container.get("securityContext", {})
        args = ["--detach", "--name", self.name, "--network", "host", "--pull", "never"]
        args += ["--user", f"{pod_sc['runAsUser']}:{pod_sc['runAsGroup']}"]
        if sc.get("readOnlyRootFilesystem") if read_only is None else read_only:
            # only the chart's volumes are writable (podman's own /run, /var/tmp tmpfs off)
            args += ["--read-only", "--read-only-tmpfs=false"]
        args += [
            a for cap in sc.get("capabilities", {}).get("drop", []) for a in ("--cap-drop", cap)
        ]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        empty = {v["name"] for v in self.spec.get("volumes", []) if "emptyDir" in v}
        claims = {t["metadata"]["name"] for t in self.sts["spec"]["volumeClaimTemplates"]}
        for mount in self.container["volumeMounts"]:
            if mount["name"] in empty:  # U: owned by the user, as fsGroup makes an emptyDir
                args += ["--tmpfs", f"{mount['mountPath']}:rw,U"]
            else:
                assert mount["name"] in claims, mount
                self.volumes.append(f"{self.name}-{mount['name']}")
                args += ["--volume", f"{self.volumes[-1]}:{mount['mountPath']}:U"]
        args += [a for k, v in env.items() for a in ("--env", f"{k}={v}")]
        ref = self.container["image"]
        out = subprocess.run([*self.podman, "run", *args, ref], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.podman, "exec", self.name, *command], capture_output=True, text=True, timeout=60
        )

    def probe(self, kind: str) -> None:
        """The chart's exec probe (readinessProbe, livenessProbe), run in the container."""
        out = self.exec(*self.container[kind]["exec"]["command"])
        assert out.returncode == 0, f"{kind}: {out.stdout}{out.stderr}"

    def restart(self) -> None:
        out = subprocess.run(
            [*self.podman, "restart", "--time", "20", self.name], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr

    def logs(self) -> str:
        out = subprocess.run([*self.podman, "logs", self.name], capture_output=True, text=True)
        return out.stdout + out.stderr

    def until(self, check: Callable[[], object], what: str) -> None:
        """Retries ``check`` until it returns without raising; fails with the logs."""
        deadline, error = time.monotonic() + START_TIMEOUT_S, None
        while time.monotonic() < deadline:
            try:
                check()
                return
            except Exception as exc:  # any failure is retried until the deadline
                error = exc
            time.sleep(1)
        pytest.fail(f"{what}: {error}\n{self.logs()[-4000:]}")

    def remove(self) -> None:
        subprocess.run(
            [*self.podman, "rm", "--force", "--time", "10", self.name], capture_output=True
        )
        for volume in self.volumes:
            subprocess.run([*self.podman, "volume", "rm", "--force", volume], capture_output=True)
