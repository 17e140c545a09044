"""The explorer in the chart, with and without its login (``explorer.oidc``): without it,
its NetworkPolicy admits the pods of the release's namespace and no one outside it, even with
``networkPolicies.ingressFrom`` set (operators port-forward); with it, the login's settings
and secrets reach the pod, ``ingressFrom`` is admitted and the pod may reach the provider.
The policies are evaluated as a cluster enforcing them would (:mod:`cinepulse_devstack.
cluster.netpol`); the manifests are checked with kubeconform."""

from __future__ import annotations

from typing import Any

import pytest

from cinepulse_devstack import chart
from cinepulse_devstack.cluster.netpol import Peer, admits
from tests.unit.chart_support import DEFAULT, env_of, require_tools

require_tools("helm", "kubeconform")

NAME = f"{chart.RELEASE}-cinepulse-explorer"
#: ingressFrom: the pods of the namespaces labelled team=web (an ingress controller's, say)
FRONTEND = "networkPolicies.ingressFrom[0].namespaceSelector.matchLabels.team=web"
OIDC = (
    "explorer.oidc.secret=explorer-oidc",
    "explorer.oidc.serverMetadataUrl=https://idp.example.com/.well-known/openid-configuration",
    "explorer.oidc.clientId=cinepulse-explorer",
    "explorer.oidc.redirectUri=https://explorer.example.com/oauth2callback",
)


def _render(*sets: str) -> str:
    r = chart.render([DEFAULT], list(sets))
    assert r.returncode == 0, r.stderr
    return r.stdout


def _explorer(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The explorer's pod (as the cluster sees it) and every NetworkPolicy."""
    (deployment,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == NAME]
    template = deployment["spec"]["template"]
    pod = {
        "metadata": {"labels": template["metadata"]["labels"], "namespace": chart.NAMESPACE},
        "spec": template["spec"],
    }
    return pod, [d for d in docs if d["kind"] == "NetworkPolicy"]


def _peer(namespace: str, **labels: str) -> Peer:
    return Peer(namespace, {"kubernetes.io/metadata.name": namespace}, labels, "10.1.2.3")


NEIGHBOUR = _peer(chart.NAMESPACE, app="debug")  # any pod of the release's namespace
FRONTEND_POD = Peer("web", {"team": "web"}, {"app": "traefik"}, "10.1.2.4")  # ingressFrom's
STRANGER = _peer("other", app="anything")


def test_without_the_login_no_one_outside_the_namespace_reaches_it() -> None:
    for sets in ((), (FRONTEND,)):
        pod, policies = _explorer(chart.documents(_render(*sets)))
        assert admits(policies, pod, 8501, NEIGHBOUR), sets
        assert not admits(policies, pod, 8501, FRONTEND_POD), sets  # ingressFrom ignored
        assert not admits(policies, pod, 8501, STRANGER), sets
        env = env_of(pod["spec"]["containers"][0])
        assert not [name for name in env if name.startswith("CINEPULSE_OIDC__")]
        assert "cinepulse.io/egress" not in pod["metadata"]["labels"]


def test_with_the_login_ingress_from_is_admitted_and_the_secrets_come_from_the_secret() -> None:
    manifests = _render(*OIDC, FRONTEND)
    pod, policies = _explorer(chart.documents(manifests))
    assert admits(policies, pod, 8501, FRONTEND_POD)
    assert not admits(policies, pod, 8501, STRANGER)  # ingressFrom, not everyone
    assert not admits(policies, pod, 9464, FRONTEND_POD)  # never the metrics port
    env = env_of(pod["spec"]["containers"][0])
    assert {k: v for k, v in env.items() if k.startswith("CINEPULSE_OIDC__")} == {
        "CINEPULSE_OIDC__SERVER_METADATA_URL": (
            "https://idp.example.com/.well-known/openid-configuration"
        ),
        "CINEPULSE_OIDC__CLIENT_ID": "cinepulse-explorer",
        "CINEPULSE_OIDC__REDIRECT_URI": "https://explorer.example.com/oauth2callback",
        "CINEPULSE_OIDC__INTERNAL_CLAIM": "groups",
        "CINEPULSE_OIDC__INTERNAL_VALUE": "cinepulse-internal",
        "CINEPULSE_OIDC__CLIENT_SECRET": {
            "secretKeyRef": {"name": "explorer-oidc", "key": "client-secret"}
        },
        "CINEPULSE_OIDC__COOKIE_SECRET": {
            "secretKeyRef": {"name": "explorer-oidc", "key": "cookie-secret"}
        },
    }
    # the provider is outside the cluster: the pod takes the egress-outside policy (443)
    assert pod["metadata"]["labels"]["cinepulse.io/egress"] == "outside"
    check = chart.kubeconform(manifests)
    assert check.returncode == 0, check.stdout + check.stderr


def test_with_the_login_and_no_ingress_from_every_client_is_admitted() -> None:
    pod, policies = _explorer(chart.documents(_render(*OIDC)))
    assert admits(policies, pod, 8501, STRANGER)  # public, as the api: the login guards it


@pytest.mark.parametrize(
    "missing",
    ["explorer.oidc.serverMetadataUrl", "explorer.oidc.clientId", "explorer.oidc.redirectUri"],
)
def test_the_login_without_a_setting_is_refused_naming_it(missing: str) -> None:
    sets = [s for s in OIDC if not s.startswith(f"{missing}=")]
    r = chart.render([DEFAULT], sets)
    assert r.returncode != 0
    assert f"{missing} is required with explorer.oidc.secret" in r.stderr


def test_a_redirect_uri_that_is_not_the_callback_is_refused() -> None:
    r = chart.render([DEFAULT], [*OIDC, "explorer.oidc.redirectUri=https://explorer.example.com/"])
    assert r.returncode != 0
    assert "redirectUri" in r.stderr
