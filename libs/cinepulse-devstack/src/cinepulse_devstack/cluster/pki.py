"""The cluster's certificates and kubeconfigs, made with ``openssl`` at each ``up``.

One CA signs every certificate (P-256 keys: fast to make, accepted by every component).
Each component has its own client identity, so the API server's Node authorizer,
NodeRestriction and the bootstrap RBAC roles apply as in any kubeadm cluster:

=====================  ===========================================  ========================
who                    subject                                      what it may do
=====================  ===========================================  ========================
admin (tests, helm)    CN=cinepulse-admin, O=system:masters         everything
kubelet                CN=system:node:<node>, O=system:nodes        its own node and pods
controller-manager     CN=system:kube-controller-manager            bootstrap role
scheduler              CN=system:kube-scheduler                     bootstrap role
kube-proxy             CN=system:kube-proxy                         system:node-proxier
API server → kubelets  CN=kube-apiserver-kubelet-client, masters    logs, exec, port-forward
=====================  ===========================================  ========================
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from cinepulse_devstack.cluster.layout import (
    CLUSTER_DOMAIN,
    KUBERNETES_SERVICE_IP,
    NODE_IP,
    NODE_NAME,
    Layout,
)
from cinepulse_devstack.procs import StackError, require_tool

#: kubeconfig name -> (CN, O)
CLIENTS: dict[str, tuple[str, str | None]] = {
    "admin": ("cinepulse-admin", "system:masters"),
    "kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kube-proxy": ("system:kube-proxy", None),
}
DAYS = "30"


def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(
        [require_tool("openssl", "apt-get install openssl"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode:
        raise StackError(f"openssl {args[0]} failed: {r.stderr.strip()[-1500:]}")


def _key(name: str, d: Path) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=d)
    (d / f"{name}.key").chmod(0o600)


def _signed(name: str, subject: str, d: Path, *, server_names: list[str] | None = None) -> None:
    """``<name>.key`` and ``<name>.crt`` signed by the CA (a client cert, or a serving cert
    for ``server_names``: DNS names and IP addresses)."""
    _key(name, d)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=d)
    ext = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature"]
    if server_names:
        sans = ",".join(
            (f"IP:{n}" if n.replace(".", "").isdigit() else f"DNS:{n}") for n in server_names
        )
        ext += ["extendedKeyUsage=serverAuth,clientAuth", f"subjectAltName={sans}"]
    else:
        ext.append("extendedKeyUsage=clientAuth")
    (d / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", DAYS, "-sha256", "-extfile", f"{name}.ext",
        "-out", f"{name}.crt", cwd=d,
    )  # fmt: skip
    for tmp in (f"{name}.csr", f"{name}.ext"):
        (d / tmp).unlink()


def make(layout: Layout) -> None:
    """The CA, the API server's serving cert, the service-account signing key, each
    client's cert and kubeconfig (``<state>/<client>.kubeconfig``)."""
    d = layout.pki
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    _key("ca", d)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=cinepulse-cluster-ca",
        "-days", DAYS, "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.crt", cwd=d,
    )  # fmt: skip
    _signed(
        "apiserver",
        "/CN=kube-apiserver",
        d,
        server_names=[
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            f"kubernetes.default.svc.{CLUSTER_DOMAIN}",
            "localhost",
            NODE_IP,
            KUBERNETES_SERVICE_IP,
            "127.0.0.1",
        ],
    )
    _signed("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", d)
    _key("sa", d)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    for client, (cn, org) in CLIENTS.items():
        _signed(client, (f"/O={org}" if org else "") + f"/CN={cn}", d)
        write_kubeconfig(layout, client)


def write_kubeconfig(layout: Layout, client: str) -> Path:
    d = layout.pki
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "cinepulse",
                "cluster": {"server": layout.server, "certificate-authority": str(d / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": client,
                "user": {
                    "client-certificate": str(d / f"{client}.crt"),
                    "client-key": str(d / f"{client}.key"),
                },
            }
        ],
        "contexts": [{"name": "cinepulse", "context": {"cluster": "cinepulse", "user": client}}],
        "current-context": "cinepulse",
    }
    path = layout.kubeconfig(client)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
