"""The one template every Cinepulse pod is built from.

:func:`pod_task` turns (component, arguments) into a :class:`CinepulsePodOperator`: the
component's image and command, its Secrets (an env variable from a key, or a read-only file
mount), the shared ConfigMap, its service account and resources, all from
:mod:`cinepulse_airflow.config`; and the same locked-down security context for every pod
(the "restricted" Pod Security Standard, plus a read-only root file system with an
``emptyDir`` at ``/tmp``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.sdk.exceptions import AirflowFailException
from kubernetes.client import models as k8s

from cinepulse_airflow.config import Config

SCRATCH = "/tmp"  # noqa: S108  (an emptyDir of the pod's own, not the host's /tmp)


def exit_code_of(remote_pod: Any, container: str) -> int | None:
    """The exit code of ``container`` in a finished pod, or None."""
    statuses = (getattr(getattr(remote_pod, "status", None), "container_statuses", None)) or []
    for status in statuses:
        if status.name == container and status.state and status.state.terminated:
            return int(status.state.terminated.exit_code)
    return None


def fail_fast_error(
    task_id: str, exit_code: int | None, codes: Collection[int]
) -> Exception | None:
    """The exception that ends a task without its retries when the command's exit code says a
    retry cannot help (bad configuration, invalid credential), else None."""
    if exit_code is not None and exit_code in codes:
        return AirflowFailException(
            f"{task_id}: the command exited {exit_code}, which a retry cannot fix; not retrying"
        )
    return None


class CinepulsePodOperator(KubernetesPodOperator):
    """A KubernetesPodOperator that does not retry exit codes listed in ``fail_fast_exit_codes``
    (for example the TMDB fetcher's 2, bad configuration, and 3, invalid credential)."""

    def __init__(self, *, fail_fast_exit_codes: Collection[int] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_fast_exit_codes = tuple(fail_fast_exit_codes)

    def cleanup(self, pod: Any, remote_pod: Any, *args: Any, **kwargs: Any) -> None:
        try:
            super().cleanup(pod, remote_pod, *args, **kwargs)
        except Exception as exc:
            code = exit_code_of(remote_pod, self.base_container_name)
            error = fail_fast_error(self.task_id, code, self.fail_fast_exit_codes)
            if error is not None:
                raise error from exc
            raise


def security_contexts(cfg: Config) -> tuple[k8s.V1PodSecurityContext, k8s.V1SecurityContext]:
    """(pod, container) security contexts: non-root, no privilege escalation, every
    capability dropped, the runtime's default seccomp profile, a read-only root file system."""
    uid = int(cfg["run_as_user"])
    seccomp = k8s.V1SeccompProfile(type="RuntimeDefault")
    pod = k8s.V1PodSecurityContext(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        fs_group=uid,
        seccomp_profile=seccomp,
    )
    container = k8s.V1SecurityContext(
        run_as_non_root=True,
        run_as_user=uid,
        allow_privilege_escalation=False,
        privileged=False,
        read_only_root_filesystem=True,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=seccomp,
    )
    return pod, container


def _secrets(cfg: Config, names: Sequence[str]) -> tuple[list[Secret], list[k8s.V1EnvVar]]:
    secrets: list[Secret] = []
    env: list[k8s.V1EnvVar] = []
    for name in names:
        spec = cfg["secrets"][name]
        if "env" in spec:
            secrets.append(Secret("env", spec["env"], spec["secret"], spec["key"]))
        else:
            secrets.append(Secret("volume", spec["mount"], spec["secret"]))
            env += [
                k8s.V1EnvVar(name=var, value=f"{spec['mount']}/{file}")
                for var, file in spec.get("env_files", {}).items()
            ]
    return secrets, env


def pod_task(
    cfg: Config,
    *,
    task_id: str,
    component: str,
    arguments: Sequence[str] | Any,
    fail_fast_exit_codes: Collection[int] = (),
    **kwargs: Any,
) -> CinepulsePodOperator:
    """One task that runs ``<component's command> <arguments>`` in a pod of its own.

    ``arguments`` may hold Jinja templates (``{{ data_interval_start }}`` ...), or be the
    output of an upstream task (the whole list, made at run time). Extra keyword
    arguments go to the operator (``retries``, ``execution_timeout``, ...)."""
    comp = cfg.component(component)
    secrets, env = _secrets(cfg, comp.get("secrets", []))
    pod_context, container_context = security_contexts(cfg)
    resources = comp.get("resources", {})
    return CinepulsePodOperator(
        task_id=task_id,
        name=f"cinepulse-{component}-{task_id}".replace("_", "-"),
        namespace=cfg["namespace"],
        image=cfg.image(component),
        image_pull_policy=cfg["image_pull_policy"],
        image_pull_secrets=[k8s.V1LocalObjectReference(name=n) for n in cfg["image_pull_secrets"]],
        cmds=[comp["command"]],
        # a list (of Jinja templates), or an upstream task's output (an XComArg)
        arguments=list(arguments) if isinstance(arguments, (list, tuple)) else arguments,
        env_vars=[*env, k8s.V1EnvVar(name="HOME", value=SCRATCH)],
        env_from=[
            k8s.V1EnvFromSource(
                config_map_ref=k8s.V1ConfigMapEnvSource(name=cfg["config_map"], optional=True)
            )
        ],
        secrets=secrets,
        volumes=[
            k8s.V1Volume(
                name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=cfg["scratch_size"])
            )
        ],
        volume_mounts=[k8s.V1VolumeMount(name="scratch", mount_path=SCRATCH)],
        container_resources=k8s.V1ResourceRequirements(
            requests=resources.get("requests"), limits=resources.get("limits")
        ),
        service_account_name=comp["service_account"],
        automount_service_account_token=False,  # the commands never call the Kubernetes API
        security_context=pod_context,
        container_security_context=container_context,
        labels={
            "app.kubernetes.io/name": "cinepulse",
            "app.kubernetes.io/instance": cfg["release"],
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": "airflow",
            # the chart's NetworkPolicies: admitted by Kafka, PostgreSQL and MongoDB as a
            # batch job, and allowed out (TMDB's API)
            "cinepulse.io/network": "jobs",
            "cinepulse.io/egress": "outside",
        },
        startup_timeout_seconds=int(cfg["startup_timeout_s"]),
        get_logs=True,
        on_finish_action="delete_succeeded_pod",  # a failed pod stays for inspection
        durable=True,  # a restarted worker reattaches to the running pod, never starts a second
        fail_fast_exit_codes=fail_fast_exit_codes,
        **kwargs,
    )
