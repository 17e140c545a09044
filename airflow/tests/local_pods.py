"""Run a Cinepulse pod task's container command on this machine instead of in a cluster.

:class:`LocalPods` replaces ``CinepulsePodOperator.execute``: it renders the task's real pod
(``build_pod_request_obj``, after Airflow has rendered the templates), and runs the
container's command and arguments, unchanged, from the workspace's environment
(``.venv/bin/<command>``). The pod's environment is translated, not invented: a variable
from a Secret key takes the test's value for that Secret and key, a Secret volume becomes a
directory of the test's files (and variables pointing into the mount point into it), the
ConfigMap's ``envFrom`` takes the test's ConfigMap values. Only ``HOME`` stays the user's
(the pod's is its scratch ``emptyDir``; here the caches, e.g. the emotion model, live in the
real one). A non-zero exit fails the task as the operator would, fail-fast codes included.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException

from cinepulse_airflow import pods

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"


@dataclass
class Ran:
    task_id: str
    argv: list[str]
    env: dict[str, str]
    returncode: int
    stdout: str
    stderr: str


@dataclass
class LocalPods:
    secrets: Mapping[str, Mapping[str, str]]  # Secret name -> key -> value
    config_map: Mapping[str, str]  # the ConfigMap's CINEPULSE_* variables
    scratch: Path
    timeout_s: float = 600
    ran: list[Ran] = field(default_factory=list)

    def environment(self, pod: Any) -> dict[str, str]:
        container = pod.spec.containers[0]
        volumes = {v.name: v for v in pod.spec.volumes or []}
        mounts: dict[str, Path] = {}
        for mount in container.volume_mounts or []:
            local = self.scratch / f"{len(self.ran)}-{mount.name}"
            local.mkdir(parents=True, exist_ok=True)
            volume = volumes[mount.name]
            if volume.secret is not None:
                for key, value in self.secrets[volume.secret.secret_name].items():
                    (local / key).write_text(value)
            mounts[mount.mount_path] = local
        env = {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(Path.home()),
            "LANG": "C.UTF-8",
        }
        for source in container.env_from or []:
            if source.config_map_ref is not None:
                env.update(self.config_map)
        for var in container.env or []:
            if var.name == "HOME":
                continue
            if var.value_from is not None:
                ref = var.value_from.secret_key_ref
                env[var.name] = self.secrets[ref.name][ref.key]
                continue
            value = var.value or ""
            for mount_path, local in mounts.items():
                if value == mount_path or value.startswith(mount_path + "/"):
                    value = str(local) + value[len(mount_path) :]
            env[var.name] = value
        return env

    def execute(self, op: pods.CinepulsePodOperator, context: Any) -> None:
        pod = op.build_pod_request_obj(context, dry_run=True)
        container = pod.spec.containers[0]
        command: list[str] = [*container.command, *(container.args or [])]
        argv = [str(BIN / command[0]), *command[1:]]
        env = self.environment(pod)
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=self.timeout_s, check=False
        )
        self.ran.append(Ran(op.task_id, argv, env, done.returncode, done.stdout, done.stderr))
        op.log.info("local pod %s: %s -> exit %s", pod.metadata.name, argv, done.returncode)
        op.log.info("stdout:\n%s\nstderr:\n%s", done.stdout[-5000:], done.stderr[-5000:])
        if done.returncode != 0:
            error = pods.fail_fast_error(op.task_id, done.returncode, op.fail_fast_exit_codes)
            raise error or AirflowException(
                f"Pod {pod.metadata.name} returned a failure (exit {done.returncode})"
            )

    def install(self, monkeypatch: pytest.MonkeyPatch) -> LocalPods:
        """Every pod task runs here until the test ends (monkeypatch undoes it)."""
        runner = self

        def execute(op: pods.CinepulsePodOperator, context: Any) -> None:
            runner.execute(op, context)

        monkeypatch.setattr(pods.CinepulsePodOperator, "execute", execute)
        return self
