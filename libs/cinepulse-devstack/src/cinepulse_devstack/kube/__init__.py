"""The Helm chart on a real control plane: kube-apiserver, kube-controller-manager,
kube-scheduler and etcd (built from the Go module proxy by ``scripts/k8s-tools.sh`` into
``~/.cache/cinepulse/bin/k8s``), started by kwokctl's ``binary`` runtime with fake nodes
(kwok), on which pods report Running and Ready and Job pods complete.

The end-to-end run (:func:`e2e`, ``make chart-e2e``) proves what the static checks
(:mod:`cinepulse_devstack.chart`) cannot: the API server accepts every object (admission,
validation, CRD schemas, Pod Security "restricted" enforced on the namespace), the
controllers turn them into pods that the scheduler places, ``lookup`` in the templates works
against a live server, the migration hook Job completes, ``helm install --wait`` and
``helm upgrade --wait`` succeed and every Deployment reports available. It also exports the
server's OpenAPI (``/openapi/v2``) and validates the rendered chart with kubeconform against
schemas derived from it.

Nothing is downloaded: kwokctl gets the path of every binary, and its HTTP(S) proxy points at
a closed local port, so an attempted download fails at once instead of reaching out.

``python -m cinepulse_devstack.kube`` runs it and prints one line per step with its duration;
``--keep`` leaves the cluster running with the release installed (``KUBECONFIG`` printed)
for a look around; the next run deletes it first.

Modules: ``constants``, ``binaries``, ``kwok`` (the cluster), ``manifests``, ``checks``,
``openapi`` (kubeconform against the server's schemas), ``run`` (:func:`e2e`, :func:`main`).
"""

from cinepulse_devstack.kube.binaries import (
    bin_dir,
    binary,
    crds_dir,
    kube_version,
    missing_binaries,
)
from cinepulse_devstack.kube.checks import (
    ASSERTED_KINDS,
    _deployments_available,
    _eventually,
    _expected_kinds,
    _objects_accepted,
    _pod_security_enforced,
    _statefulsets_ready,
    apply_crds,
)
from cinepulse_devstack.kube.constants import (
    APISERVER_PORT,
    BINARIES,
    CLUSTER,
    ETCD_PORT,
    INSTALL_TIMEOUT,
    NAMESPACE,
    NODE_ALLOCATABLE,
    NODES,
    RELEASE,
    VOLUME_SIZE,
    VOLUMES,
    WRITE_KEYS,
)
from cinepulse_devstack.kube.kwok import (
    ClusterClient,
    KwokCluster,
    StepFailed,
    _run,
)
from cinepulse_devstack.kube.manifests import (
    namespace_manifest,
    nodes_manifest,
    restricted_namespace,
)
from cinepulse_devstack.kube.openapi import (
    _inline_v2,
    _kubeconform_openapi,
    openapi_schemas,
)
from cinepulse_devstack.kube.run import (
    Report,
    Step,
    _dump_state,
    _values_files,
    _warnings,
    _workdir,
    e2e,
    main,
)

__all__ = [
    "APISERVER_PORT",
    "ASSERTED_KINDS",
    "BINARIES",
    "CLUSTER",
    "ETCD_PORT",
    "INSTALL_TIMEOUT",
    "NAMESPACE",
    "NODES",
    "NODE_ALLOCATABLE",
    "RELEASE",
    "VOLUMES",
    "VOLUME_SIZE",
    "WRITE_KEYS",
    "ClusterClient",
    "KwokCluster",
    "Report",
    "Step",
    "StepFailed",
    "_deployments_available",
    "_dump_state",
    "_eventually",
    "_expected_kinds",
    "_inline_v2",
    "_kubeconform_openapi",
    "_objects_accepted",
    "_pod_security_enforced",
    "_run",
    "_statefulsets_ready",
    "_values_files",
    "_warnings",
    "_workdir",
    "apply_crds",
    "bin_dir",
    "binary",
    "crds_dir",
    "e2e",
    "kube_version",
    "main",
    "missing_binaries",
    "namespace_manifest",
    "nodes_manifest",
    "openapi_schemas",
    "restricted_namespace",
]
