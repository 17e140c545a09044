"""Images on the node without a registry: built with podman, saved as archives and
imported into containerd's ``k8s.io`` namespace, where the kubelet finds them
(``imagePullPolicy: IfNotPresent`` or ``Never``: nothing is ever pulled).

The cluster builds two images of its own: the sandbox image (``images/pause/pause.c``,
static) and CoreDNS (the binary scripts/k8s-tools.sh builds), each FROM scratch. The
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
from cinepulse_devstack.cluster.layout import COREDNS_IMAGE_REPO, PAUSE_IMAGE, Layout
from cinepulse_devstack.kube import bin_dir
from cinepulse_devstack.procs import StackError, require_tool

Say = Callable[[str], None]


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = require_tool("podman", "apt-get install podman runc")
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env:
        # this VM's hybrid cgroups: no default ulimits (scripts/images.sh does the same)
        conf = default_cache() / "images" / "containers.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        if not conf.exists():
            conf.write_text("[containers]\ndefault_ulimits = []\n")
        env["CONTAINERS_CONF"] = str(conf)
    r = subprocess.run(
        [exe, "--runtime", "runc", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=1800,
    )
    if check and r.returncode:
        raise StackError(f"podman {' '.join(args[:2])}: {(r.stderr or r.stdout).strip()[-1500:]}")
    return r


def image_id(ref: str) -> str | None:
    r = podman("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return r.stdout.strip() or None if r.returncode == 0 else None


def coredns_image() -> str:
    version = (bin_dir() / ".coredns.version").read_text().strip()
    return f"{COREDNS_IMAGE_REPO}:{version.lstrip('v')}"


def _build_scratch(ref: str, binary: Path, entry: str, user: str) -> None:
    with tempfile.TemporaryDirectory() as ctx:
        (Path(ctx) / entry).write_bytes(binary.read_bytes())
        (Path(ctx) / entry).chmod(0o755)
        (Path(ctx) / "Containerfile").write_text(
            f'FROM scratch\nCOPY {entry} /{entry}\nUSER {user}\nENTRYPOINT ["/{entry}"]\n'
        )
        podman("build", "--quiet", "--tag", ref, ctx)


def build_own_images(say: Say) -> list[str]:
    """The pause and CoreDNS images, built when podman does not have them yet."""
    built = []
    if image_id(PAUSE_IMAGE) is None:
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
            _build_scratch(PAUSE_IMAGE, out, "pause", "65535:65535")
        built.append(PAUSE_IMAGE)
    dns = coredns_image()
    if image_id(dns) is None:
        _build_scratch(dns, bin_dir() / "coredns", "coredns", "65532:65532")
        built.append(dns)
    if built:
        say(f"built {', '.join(built)} (FROM scratch, podman)")
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
            podman("save", "--format", "docker-archive", "--output", str(archive), ref)
            r = ctr("images", "import", str(archive))
            if r.returncode:
                raise StackError(f"ctr images import {ref}: {(r.stderr or r.stdout).strip()}")
        stamps[ref] = iid
        stamps_path.write_text(json.dumps(stamps, indent=1))
        size = podman("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip()
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
