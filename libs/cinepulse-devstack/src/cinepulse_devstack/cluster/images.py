"""Images on the node without a registry: built with podman, saved as archives and
imported into containerd's ``k8s.io`` namespace, where the kubelet finds them
(``imagePullPolicy: IfNotPresent`` or ``Never``: nothing is ever pulled).

The cluster builds images of its own, each FROM scratch: the sandbox image
(``images/pause/pause.c``, static), CoreDNS, the Prometheus operator, its config reloader,
Prometheus, Alertmanager and Traefik (static Go binaries scripts/k8s-tools.sh builds). The
project's images come from ``make images`` / ``make images-deps``. An image is imported
again only when podman's image id for its reference changed (a stamp per reference).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from cinepulse_common.paths import default_cache, repo_root
from cinepulse_devstack.cluster.layout import (
    ALERTMANAGER_IMAGE_REPO,
    CONFIG_RELOADER_IMAGE_REPO,
    COREDNS_IMAGE_REPO,
    PAUSE_IMAGE,
    PROMETHEUS_IMAGE_REPO,
    PROMETHEUS_OPERATOR_IMAGE_REPO,
    TRAEFIK_IMAGE_REPO,
    Layout,
)
from cinepulse_devstack.kube import bin_dir
from cinepulse_devstack.procs import StackError, require_tool

Say = Callable[[str], None]


def engine_name() -> str:
    """podman, or docker for a kind cluster (CINEPULSE_IMAGE_ENGINE, as scripts/images.sh)."""
    return os.environ.get("CINEPULSE_IMAGE_ENGINE", "podman")


def engine(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The image engine's CLI (podman and docker take the same commands used here)."""
    name = engine_name()
    exe = require_tool(name, "apt-get install podman runc" if name == "podman" else "docker")
    env, argv = dict(os.environ), [exe, *args]
    if name == "podman":
        argv = [exe, "--runtime", "runc", *args]
        if "CONTAINERS_CONF" not in env:
            # this VM's hybrid cgroups: no default ulimits (scripts/images.sh does the same)
            conf = default_cache() / "images" / "containers.conf"
            conf.parent.mkdir(parents=True, exist_ok=True)
            if not conf.exists():
                conf.write_text("[containers]\ndefault_ulimits = []\n")
            env["CONTAINERS_CONF"] = str(conf)
    r = subprocess.run(argv, capture_output=True, text=True, check=False, env=env, timeout=1800)
    if check and r.returncode:
        raise StackError(f"{name} {' '.join(args[:2])}: {(r.stderr or r.stdout).strip()[-1500:]}")
    return r


def image_id(ref: str) -> str | None:
    r = engine("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return r.stdout.strip() or None if r.returncode == 0 else None


#: the Go binaries run FROM scratch: binary (in bin_dir(), with its version stamp), image
#: repository, path in the image (the operator starts the reloader as
#: /bin/prometheus-config-reloader, as upstream's image has it), user (no /etc/passwd: uids)
SCRATCH_BINARIES = {
    "coredns": (COREDNS_IMAGE_REPO, "/coredns", "65532:65532"),
    "prometheus-operator": (PROMETHEUS_OPERATOR_IMAGE_REPO, "/bin/operator", "65534:65534"),
    "prometheus-config-reloader": (
        CONFIG_RELOADER_IMAGE_REPO,
        "/bin/prometheus-config-reloader",
        "65534:65534",
    ),
    # not images/deps/prometheus: Debian's build has no Kubernetes service discovery
    "prometheus": (PROMETHEUS_IMAGE_REPO, "/bin/prometheus", "65534:65534"),
    # upstream's image has it at /bin/alertmanager and runs it as nobody
    "alertmanager": (ALERTMANAGER_IMAGE_REPO, "/bin/alertmanager", "65534:65534"),
    # the ingress controller (cluster.ingress); upstream's image sets no user (root); ours
    # runs as 65532 (it listens on unprivileged ports)
    "traefik": (TRAEFIK_IMAGE_REPO, "/traefik", "65532:65532"),
}


def binary_image(binary: str) -> str:
    """The image reference of a :data:`SCRATCH_BINARIES` binary, tagged with its build's
    version: a rebuilt binary of another version gets a new image."""
    version = (bin_dir() / f".{binary}.version").read_text().strip()
    return f"{SCRATCH_BINARIES[binary][0]}:{version.lstrip('v')}"


def coredns_image() -> str:
    return binary_image("coredns")


def own_images() -> list[str]:
    """Every image the cluster builds itself, for the node to import."""
    return [PAUSE_IMAGE, *(binary_image(b) for b in SCRATCH_BINARIES)]


def _build_scratch(ref: str, binary: Path, path: str, user: str) -> None:
    name = path.rsplit("/", 1)[1]
    with tempfile.TemporaryDirectory() as ctx:
        (Path(ctx) / name).write_bytes(binary.read_bytes())
        (Path(ctx) / name).chmod(0o755)
        (Path(ctx) / "Containerfile").write_text(
            f'FROM scratch\nCOPY {name} {path}\nUSER {user}\nENTRYPOINT ["{path}"]\n'
        )
        engine("build", "--quiet", "--tag", ref, ctx)


def build_own_images(say: Say, binaries: Iterable[str] = SCRATCH_BINARIES, *,
                     pause: bool = True) -> list[str]:  # fmt: skip
    """The pause image (a node of ours needs it; kind's has its own) and those of
    ``binaries``, built when the engine does not have them yet."""
    built = []
    if pause and image_id(PAUSE_IMAGE) is None:
        gcc = require_tool("gcc", "apt-get install gcc libc6-dev")
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "pause"
            src = repo_root() / "images" / "pause" / "pause.c"
            r = subprocess.run(
                [gcc, "-static", "-Os", "-o", str(out), str(src)], capture_output=True, text=True
            )
            if r.returncode:
                raise StackError(
                    f"gcc -static pause.c: {r.stderr.strip()} (apt-get install libc6-dev)"
                )
            _build_scratch(PAUSE_IMAGE, out, "/pause", "65535:65535")
        built.append(PAUSE_IMAGE)
    for binary in binaries:
        _, path, user = SCRATCH_BINARIES[binary]
        ref = binary_image(binary)
        if image_id(ref) is None:
            _build_scratch(ref, bin_dir() / binary, path, user)
            built.append(ref)
    if built:
        say(f"built {', '.join(built)} (FROM scratch, {engine_name()})")
    return built


def _stamps(layout: Layout) -> Path:
    return layout.images.parent / "imported.json"


def import_images(
    layout: Layout,
    refs: Iterable[str],
    ctr: Callable[..., subprocess.CompletedProcess[str]],
    say: Say,
) -> int:
    """Import each podman image ``ref`` into containerd unless the same image id is there."""
    stamps_path = _stamps(layout)
    try:
        stamps: dict[str, str] = json.loads(stamps_path.read_text())
    except (OSError, ValueError):
        stamps = {}
    present = set(ctr("images", "ls", "-q").stdout.split())
    n = 0
    for ref in refs:
        iid = image_id(ref)
        if iid is None:
            raise StackError(f"image {ref} is not built (make images; make images-deps)")
        if stamps.get(ref) == iid and ref in present:
            continue
        with tempfile.TemporaryDirectory(dir=layout.state) as d:
            archive = Path(d) / "image.tar"
            engine("save", "--format", "docker-archive", "--output", str(archive), ref)
            r = ctr("images", "import", str(archive))
            if r.returncode:
                raise StackError(f"ctr images import {ref}: {(r.stderr or r.stdout).strip()}")
        stamps[ref] = iid
        stamps_path.write_text(json.dumps(stamps, indent=1))
        size = engine("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip()
        say(f"imported {ref} ({int(size) / 1e6:.0f} MB)")
        n += 1
    return n


def images_in(manifests: str) -> list[str]:
    """Every container image a rendered manifest names (containers and init containers of
    pods, pod templates, CronJobs' job templates, and SparkApplications' ``image``)."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            image = node.get("image")
            if isinstance(image, str) and ("containers" not in node):
                found.add(image)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for doc in yaml.safe_load_all(manifests):
        walk(doc)
    return sorted(found)
