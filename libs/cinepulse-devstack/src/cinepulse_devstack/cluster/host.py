"""What the cluster changes on this machine, recorded before ``up`` and restored by ``down``.

A real node is not a process tree: the kubelet tunes kernel settings, kube-proxy and the
kubelet write iptables chains, the bridge plugin turns on IP forwarding, containerd mounts
network namespaces and overlay file systems, and the kubelet makes cgroups. ``up`` records
the host as it found it (:class:`HostRecord`, a JSON file in the cluster's state folder) and
``down`` puts it back: the sysctls to their values, iptables to its saved rules (tables that
did not exist are emptied), mounts below the cluster's folders unmounted, its interfaces
and cgroups removed, and the well-known folders it created deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cinepulse_devstack.cluster.layout import BRIDGE_IFACE, DUMMY_IFACE, NODE_IP, Layout
from cinepulse_devstack.procs import StackError, require_tool

#: kernel settings the kubelet (setupKernelTunables), the bridge plugin and the cluster set
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/ipv4/conf/all/route_localnet",
)
#: what the cluster needs set (pods on one bridge reaching each other through Service
#: addresses need bridged traffic to pass iptables; pods reach the API server by forwarding)
REQUIRED_SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
}
#: folders at fixed places that containerd, the kubelet or the CNI plugins may create
WELL_KNOWN_DIRS = (
    "/run/containerd",
    "/run/netns",
    "/opt/containerd",
    "/var/log/containers",
    "/var/log/pods",
    "/var/lib/kubelet",
    "/var/lib/cni",
)
IPTABLES_TABLES = ("filter", "nat", "mangle", "raw", "security")
CGROUP_NAMES = ("kubepods", "k8s.io")


@dataclass
class HostRecord:
    sysctls: dict[str, str] = field(default_factory=dict)
    iptables: dict[str, str] = field(default_factory=dict)  # "iptables"/"ip6tables" -> save
    existed: list[str] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> HostRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if check and r.returncode:
        raise StackError(f"{' '.join(args)} failed: {(r.stderr or r.stdout).strip()[-800:]}")
    return r


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


def record() -> HostRecord:
    rec = HostRecord()
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            rec.sysctls[name] = _sysctl_path(name).read_text().strip()
    for tool in ("iptables", "ip6tables"):
        save = require_tool(f"{tool}-save", "apt-get install iptables")
        rec.iptables[tool] = _sh(save).stdout
    rec.existed = [d for d in WELL_KNOWN_DIRS if os.path.lexists(d)]
    return rec


def prepare(layout: Layout) -> None:
    """Record the host (once: a second ``up`` keeps the first record), then the sysctls and
    the dummy interface the cluster needs."""
    if HostRecord.load(layout.host_record) is None:
        layout.state.mkdir(parents=True, exist_ok=True)
        record().save(layout.host_record)
    for name, value in REQUIRED_SYSCTLS.items():
        try:
            _sysctl_path(name).write_text(value)
        except OSError as exc:
            raise StackError(
                f"cannot set {name.replace('/', '.')}={value} ({exc}): the cluster needs root "
                "and a kernel with bridge netfilter"
            ) from exc
    ip = require_tool("ip", "apt-get install iproute2")
    if _sh(ip, "link", "show", DUMMY_IFACE, check=False).returncode:
        # an empty bridge as the node's own interface: this VM's kernel has no dummy driver
        # (and loads no modules); a bridge without ports carries an address just as well
        _sh(ip, "link", "add", DUMMY_IFACE, "type", "bridge")
    _sh(ip, "addr", "replace", f"{NODE_IP}/32", "dev", DUMMY_IFACE)
    _sh(ip, "link", "set", DUMMY_IFACE, "up")


def mounts_below(*roots: str) -> list[str]:
    """Mount points at or below any of ``roots``, deepest first."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if any(point == r or point.startswith(r.rstrip("/") + "/") for r in roots):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def unmount_below(*roots: str) -> int:
    points = mounts_below(*roots)
    for p in points:
        if _sh("umount", p, check=False).returncode:
            _sh("umount", "-l", p, check=False)  # busy: detach now, freed when unused
    return len(points)


def _remove_cgroups() -> int:
    removed = 0
    base = Path("/sys/fs/cgroup")
    hierarchies = [p for p in base.iterdir() if p.is_dir()] if base.is_dir() else []
    for h in [base, *hierarchies]:
        for name in CGROUP_NAMES:
            top = h / name
            if not top.is_dir():
                continue
            # a container whose shim died with containerd still runs in its cgroup
            for procs_file in top.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    for pid in procs_file.read_text().split():
                        os.kill(int(pid), 9)
            # deepest first: a cgroup is removed with rmdir once it has no children and tasks
            for d in sorted(
                (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
            ):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
                removed += 1
    return removed


def restore(layout: Layout) -> list[str]:
    """Undo what ``up`` and the node did to the host; returns what it restored, for the
    progress line. Safe to run twice and on a host the cluster never touched."""
    done: list[str] = []
    n = unmount_below(str(layout.state), "/run/netns", "/run/containerd")
    if n:
        done.append(f"{n} mounts")
    ip = require_tool("ip", "apt-get install iproute2")
    for iface in (BRIDGE_IFACE, DUMMY_IFACE):
        if _sh(ip, "link", "show", iface, check=False).returncode == 0:
            _sh(ip, "link", "delete", iface, check=False)
            done.append(f"interface {iface}")
    # deleting the bridge also removes the veths of pods killed without a CNI DEL
    rec = HostRecord.load(layout.host_record)
    if rec is not None:
        for tool, saved in rec.iptables.items():
            present = {t for t in IPTABLES_TABLES if f"*{t}\n" in saved}
            r = subprocess.run(
                [f"{tool}-restore"], input=saved, capture_output=True, text=True, check=False
            )
            if r.returncode:
                raise StackError(f"{tool}-restore failed: {r.stderr.strip()[-800:]}")
            for table in set(IPTABLES_TABLES) - present:
                _sh(tool, "-t", table, "-F", check=False)
                _sh(tool, "-t", table, "-X", check=False)
        done.append("iptables rules")
        for name, value in rec.sysctls.items():
            with contextlib.suppress(OSError):
                if _sysctl_path(name).read_text().strip() != value:
                    _sysctl_path(name).write_text(value)
                    done.append(f"{name.replace('/', '.')}={value}")
        for d in WELL_KNOWN_DIRS:
            if d not in rec.existed and os.path.lexists(d):
                _sh("rm", "-rf", "--one-file-system", d, check=False)
                done.append(d)
        if not os.path.lexists("/var/log/containers") or "/var/log/containers" in rec.existed:
            _remove_links_into(Path("/var/log/containers"), layout.pod_logs)
    n = _remove_cgroups()
    if n:
        done.append(f"{n} cgroups")
    return done


def _remove_links_into(folder: Path, target: Path) -> None:
    """The kubelet's symlinks in /var/log/containers that point into the cluster's logs."""
    if not folder.is_dir():
        return
    for link in folder.iterdir():
        with contextlib.suppress(OSError):
            if link.is_symlink() and str(os.readlink(link)).startswith(str(target)):
                link.unlink()
