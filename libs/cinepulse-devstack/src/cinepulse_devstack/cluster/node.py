"""The local cluster's processes: etcd, the control plane, containerd, the kubelet and
kube-proxy, run as this machine's processes (root), each with a pid file and a log in the
cluster's state folder. CoreDNS and everything else run as pods.

``up`` is idempotent: what runs is checked and left alone, what is missing is started.
``down`` stops every container, then the node and the control plane, then restores the host
(:mod:`cinepulse_devstack.cluster.host`) and removes the state folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from cinepulse_devstack import procs
from cinepulse_devstack.cluster import configs, host, pki
from cinepulse_devstack.cluster.client import KubeClient
from cinepulse_devstack.cluster.layout import (
    APISERVER_PORT,
    CLUSTER_CIDR,
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
    KUBE_PROXY_HEALTHZ_PORT,
    KUBE_PROXY_METRICS_PORT,
    KUBELET_HEALTHZ_PORT,
    NODE_IP,
    NODE_NAME,
    POD_CIDR,
    SERVICE_CIDR,
    Layout,
)
from cinepulse_devstack.kube import StepFailed, bin_dir
from cinepulse_devstack.procs import StackError

Say = Callable[[str], None]
#: the binaries the node runs, and those of the images it builds FROM scratch
#: (scripts/k8s-tools.sh builds them)
NODE_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "coredns",
    "prometheus-operator",
    "prometheus-config-reloader",
    "prometheus",
    "alertmanager",
    "traefik",
)
#: Debian packages of the node and what each provides
HOST_PACKAGES = {
    "containerd": "/usr/bin/containerd",
    "runc": "/usr/sbin/runc",
    "containernetworking-plugins": f"{configs.CNI_BIN_DIR}/bridge",
    "iptables": "/usr/sbin/iptables",
    "conntrack": "/usr/sbin/conntrack",
    "openssl": "/usr/bin/openssl",
}


@dataclass
class Daemon:
    name: str
    argv: list[str]
    probe: Callable[[], object]  # raises until the daemon serves
    timeout_s: float = 120


def missing_prerequisites() -> list[str]:
    """What ``up`` needs and this machine lacks, each with the command that provides it."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (the kubelet manages cgroups, mounts and iptables)")
    pkgs = [p for p, path in HOST_PACKAGES.items() if not Path(path).exists()]
    if pkgs:
        missing.append(f"Debian packages: apt-get install {' '.join(pkgs)}")
    bins = [b for b in NODE_BINARIES if not (bin_dir() / b).is_file()]
    if bins:
        missing.append(f"{', '.join(bins)} in {bin_dir()}: bash scripts/k8s-tools.sh")
    return missing


class Node(KubeClient):
    """This machine as the cluster's one node."""

    provider = "local"
    #: hostPath volumes for the claims (Kafka, PostgreSQL, MongoDB, Spark's checkpoints, spare)
    VOLUMES, VOLUME_SIZE = 6, "20Gi"

    def __init__(self, layout: Layout | None = None) -> None:
        self.layout = layout or Layout.default()

    # -- the provider's calls (client.KubeClient) ------------------------------------------
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig("admin")

    def tool(self, name: str) -> str:
        return str(bin_dir() / name)

    def bring_up(self, images: Iterable[str], say: Say) -> None:
        from cinepulse_devstack import cluster

        cluster.up(self, say=say, extra_images=images)

    def tear_down(self, say: Say) -> None:
        from cinepulse_devstack import cluster

        cluster.down(self, say=say)

    def load_images(self, refs: Iterable[str], say: Say) -> int:
        from cinepulse_devstack.cluster import images

        return images.import_images(self.layout, list(refs), self.ctr, say)

    def provide_storage(self) -> str:
        root = self.layout.volumes
        for i in range(self.VOLUMES):
            d = root / f"pv-{i}"
            d.mkdir(parents=True, exist_ok=True)
            # hostPath volumes ignore fsGroup: the non-root databases must be able to write
            d.chmod(0o1777)
        manifests = configs.pv_manifests(self.layout, self.VOLUMES, self.VOLUME_SIZE)
        self.kubectl("apply", "-f", "-", stdin=manifests)
        return f"{self.VOLUMES} hostPath PersistentVolumes in {root}"

    def host_address(self) -> str:
        return NODE_IP

    def failure_file(self) -> Path:
        return self.layout.state.parent / "cinepulse-cluster-failure.txt"

    # -- helpers ------------------------------------------------------------------------

    def pidfile(self, name: str) -> Path:
        return self.layout.run / f"{name}.pid"

    def log(self, name: str) -> Path:
        return self.layout.logs / f"{name}.log"

    def alive(self, name: str) -> bool:
        return procs.pid_alive(procs.read_pid(self.pidfile(name)))

    def ctr(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", str(self.layout.containerd_socket), "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=600,
        )

    def _tls(self, client: str = "admin") -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.layout.pki / "ca.crt"))
        ctx.load_cert_chain(
            str(self.layout.pki / f"{client}.crt"), str(self.layout.pki / f"{client}.key")
        )
        return ctx

    def _get_ok(self, url: str, *, tls: ssl.SSLContext | bool = False) -> None:
        r = httpx.get(url, verify=tls, timeout=3)
        if r.status_code != 200:
            raise StackError(f"{url}: HTTP {r.status_code} {r.text[:200]}")

    # -- the daemons --------------------------------------------------------------------
    def daemons(self) -> list[Daemon]:
        lo, p, st = "127.0.0.1", self.layout.pki, self.layout
        kc = st.kubeconfig
        return [
            Daemon(
                "etcd",
                [
                    self.tool("etcd"), "--name", "cinepulse", "--data-dir", str(st.etcd_data),
                    "--listen-client-urls", f"http://{lo}:{ETCD_CLIENT_PORT}",
                    "--advertise-client-urls", f"http://{lo}:{ETCD_CLIENT_PORT}",
                    "--listen-peer-urls", f"http://{lo}:{ETCD_PEER_PORT}",
                    "--initial-advertise-peer-urls", f"http://{lo}:{ETCD_PEER_PORT}",
                    "--initial-cluster", f"cinepulse=http://{lo}:{ETCD_PEER_PORT}",
                    # a throwaway test cluster on a shared disk: no fsync per write
                    "--unsafe-no-fsync", "--quota-backend-bytes", str(2 * 1024**3),
                ],
                lambda: self._get_ok(f"http://{lo}:{ETCD_CLIENT_PORT}/health"),
            ),
            Daemon(
                "kube-apiserver",
                [
                    self.tool("kube-apiserver"),
                    "--etcd-servers", f"http://{lo}:{ETCD_CLIENT_PORT}",
                    "--bind-address", NODE_IP, "--advertise-address", NODE_IP,
                    "--secure-port", str(APISERVER_PORT),
                    "--service-cluster-ip-range", SERVICE_CIDR,
                    "--tls-cert-file", str(p / "apiserver.crt"),
                    "--tls-private-key-file", str(p / "apiserver.key"),
                    "--client-ca-file", str(p / "ca.crt"),
                    "--kubelet-client-certificate", str(p / "apiserver-kubelet-client.crt"),
                    "--kubelet-client-key", str(p / "apiserver-kubelet-client.key"),
                    # the node's name resolves nowhere here: reach kubelets by address
                    "--kubelet-preferred-address-types", "InternalIP",
                    "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
                    "--service-account-key-file", str(p / "sa.pub"),
                    "--service-account-signing-key-file", str(p / "sa.key"),
                    "--authorization-mode", "Node,RBAC",
                    "--enable-admission-plugins", "NodeRestriction",
                    # as kubeadm does: Pod Security admission, per namespace, decides
                    "--allow-privileged=true",
                    "--profiling=false",
                ],
                lambda: self._get_ok(f"{st.server}/readyz", tls=self._tls()),
            ),
            Daemon(
                "kube-controller-manager",
                [
                    self.tool("kube-controller-manager"),
                    "--kubeconfig", str(kc("controller-manager")),
                    "--authentication-kubeconfig", str(kc("controller-manager")),
                    "--authorization-kubeconfig", str(kc("controller-manager")),
                    "--bind-address", lo, "--leader-elect=false",
                    "--use-service-account-credentials=true",
                    "--service-account-private-key-file", str(p / "sa.key"),
                    "--root-ca-file", str(p / "ca.crt"),
                    "--cluster-signing-cert-file", str(p / "ca.crt"),
                    "--cluster-signing-key-file", str(p / "ca.key"),
                    "--allocate-node-cidrs=true", "--cluster-cidr", CLUSTER_CIDR,
                    "--node-cidr-mask-size", POD_CIDR.split("/")[1],
                    "--service-cluster-ip-range", SERVICE_CIDR,
                    "--profiling=false",
                ],
                lambda: self._get_ok(f"https://{lo}:10257/healthz"),
            ),
            Daemon(
                "kube-scheduler",
                [
                    self.tool("kube-scheduler"),
                    "--kubeconfig", str(kc("scheduler")),
                    "--authentication-kubeconfig", str(kc("scheduler")),
                    "--authorization-kubeconfig", str(kc("scheduler")),
                    "--bind-address", lo, "--leader-elect=false", "--profiling=false",
                ],
                lambda: self._get_ok(f"https://{lo}:10259/healthz"),
            ),
            Daemon(
                "containerd",
                ["containerd", "--config", str(st.state / "containerd.toml")],
                lambda: self.ctr("version", check=True),
            ),
            Daemon(
                "kubelet",
                [
                    self.tool("kubelet"),
                    "--config", str(st.state / "kubelet.yaml"),
                    "--kubeconfig", str(kc("kubelet")),
                    "--root-dir", str(st.kubelet_root),
                    "--node-ip", NODE_IP, "--hostname-override", NODE_NAME,
                ],
                lambda: self._get_ok(f"http://{lo}:{KUBELET_HEALTHZ_PORT}/healthz"),
            ),
            Daemon(
                "kube-proxy",
                [
                    self.tool("kube-proxy"),
                    "--kubeconfig", str(kc("kube-proxy")),
                    "--proxy-mode", "iptables", "--cluster-cidr", CLUSTER_CIDR,
                    "--hostname-override", NODE_NAME,
                    # it may not set the conntrack sysctls on this VM; NodePorts stay off
                    # loopback (route_localnet untouched): clients use a port-forward
                    "--conntrack-max-per-core=0",
                    "--conntrack-tcp-timeout-established=0",
                    "--conntrack-tcp-timeout-close-wait=0",
                    "--iptables-localhost-nodeports=false",
                    "--metrics-bind-address", f"{lo}:{KUBE_PROXY_METRICS_PORT}",
                    "--healthz-bind-address", f"{lo}:{KUBE_PROXY_HEALTHZ_PORT}",
                ],
                lambda: self._get_ok(f"http://{lo}:{KUBE_PROXY_HEALTHZ_PORT}/healthz"),
            ),
        ]  # fmt: skip

    def start(self, d: Daemon, say: Say) -> None:
        if self.alive(d.name):
            say(f"{d.name} running (pid {procs.read_pid(self.pidfile(d.name))})")
            return
        t0 = time.monotonic()
        pid = procs.spawn(d.argv, log=self.log(d.name), pidfile=self.pidfile(d.name))
        procs.wait_until(
            d.probe,
            timeout_s=d.timeout_s,
            alive=lambda: procs.pid_alive(pid),
            what=d.name,
            log=self.log(d.name),
        )
        say(f"{d.name} up in {time.monotonic() - t0:.1f}s (pid {pid}, log {self.log(d.name)})")

    # -- up / down / status ---------------------------------------------------------------
    def prepare(self, say: Say) -> None:
        missing = missing_prerequisites()
        if missing:
            raise StackError("the cluster cannot start; missing:\n  " + "\n  ".join(missing))
        st = self.layout
        for d in (st.state, st.run, st.logs, st.images):
            d.mkdir(parents=True, exist_ok=True)
        host.prepare(st)
        if not (st.pki / "ca.crt").is_file():
            pki.make(st)
            say(f"certificates and kubeconfigs in {st.pki}")
        configs.write_all(st)

    def wait_node_ready(self, timeout_s: float = 120) -> str:
        """The node registered, then Ready. ``kubectl wait`` fails at once on a node that
        does not exist yet, and the kubelet answers its health check before it registers
        (seen in CI: NotFound 1 s after the kubelet started)."""
        deadline = time.monotonic() + timeout_s
        while self.kubectl("get", f"node/{NODE_NAME}", check=False).returncode:
            if not self.alive("kubelet"):
                raise StackError(f"the kubelet exited:\n{procs.tail(self.log('kubelet'))}")
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"node {NODE_NAME} not registered within {timeout_s:g}s; kubelet log:\n"
                    + procs.tail(self.log("kubelet"))
                )
            time.sleep(0.5)
        left = max(10, int(deadline - time.monotonic()))
        self.kubectl("wait", "--for=condition=Ready", f"node/{NODE_NAME}",
                     f"--timeout={left}s", timeout=left + 10)  # fmt: skip
        return f"node {NODE_NAME} Ready"

    def stop(self, name: str) -> bool:
        pid = procs.read_pid(self.pidfile(name))
        was = procs.pid_alive(pid)
        procs.terminate(pid, timeout_s=20)
        self.pidfile(name).unlink(missing_ok=True)
        return was

    def remove_containers(self) -> int:
        """Every container of the k8s.io namespace killed and deleted (no graceful stop:
        the cluster is going away with its data)."""
        if not self.layout.containerd_socket.exists() or not self.alive("containerd"):
            return 0
        tasks = self.ctr("tasks", "ls", "-q").stdout.split()
        for t in tasks:
            self.ctr("tasks", "kill", "-s", "SIGKILL", t)
        for t in tasks:
            self.ctr("tasks", "delete", "-f", t)
        containers = self.ctr("containers", "ls", "-q").stdout.split()
        if containers:
            self.ctr("containers", "delete", *containers)
        return len(containers)

    def kill_shims(self) -> int:
        """containerd's runc shims outlive containerd; those of this cluster's socket."""
        sock = str(self.layout.containerd_socket)
        n = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
                if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and sock.encode() in cmd:
                    os.kill(int(entry.name), signal.SIGKILL)
                    n += 1
        return n

    def down(self, say: Say) -> None:
        st = self.layout
        stopped = [n for n in ("kubelet", "kube-proxy") if self.stop(n)]
        if (bin_dir() / "kube-proxy").is_file():
            subprocess.run([self.tool("kube-proxy"), "--cleanup"], capture_output=True, check=False)
        n = self.remove_containers()
        stopped += [n for n in ("containerd",) if self.stop(n)]
        shims = self.kill_shims()
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            if self.stop(name):
                stopped.append(name)
        say(f"stopped {', '.join(stopped) or 'nothing (not running)'}; "
            f"{n} containers removed, {shims} shims killed")  # fmt: skip
        restored = host.restore(st)
        say(f"host restored: {', '.join(restored) or 'nothing to restore'}")
        left = host.mounts_below(str(st.state))
        if left:
            raise StackError(f"mounts left below {st.state}, not removed: {left[:5]}")
        if st.state.exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(st.state)], check=False)
            say(f"removed {st.state} (images kept in {st.images})")

    def status(self) -> list[tuple[str, bool, str]]:
        rows = []
        for d in self.daemons():
            pid = procs.read_pid(self.pidfile(d.name))
            if not procs.pid_alive(pid):
                rows.append((d.name, False, "not running"))
                continue
            try:
                d.probe()
                rows.append((d.name, True, f"pid {pid}"))
            except Exception as exc:  # a probe failure is the status, not an error
                rows.append((d.name, False, f"pid {pid}, not answering: {exc}"[:160]))
        return rows


def run_quiet(args: Sequence[str]) -> str:
    return procs.run(args, what=" ".join(args[:2]))
