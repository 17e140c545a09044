"""NetworkPolicy ingress, evaluated: would the policies admit a connection?

The node's CNI (the bridge plugin) does not enforce NetworkPolicies, so a scrape that
succeeds here proves nothing about them. :func:`admits` applies the Kubernetes semantics
to the live objects instead (a pod selected by no ingress policy accepts everything; one
that is selected accepts what any rule of any selecting policy allows), so the e2e can ask
whether the chart's policies let Prometheus in on a cluster that enforces them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A label selector (``{}`` selects everything; ``None``, an absent one, nothing)."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Peer:
    """The client: its pod's labels and address, its namespace's name and labels."""

    namespace: str
    namespace_labels: dict[str, str]
    labels: dict[str, str]
    ip: str


def _from_ok(peers: list[dict[str, Any]] | None, peer: Peer, namespace: str) -> bool:
    if not peers:  # no "from": every source
        return True
    for p in peers:
        if "ipBlock" in p:
            ip = ipaddress.ip_address(peer.ip)
            block = p["ipBlock"]
            if ip in ipaddress.ip_network(block["cidr"]) and not any(
                ip in ipaddress.ip_network(e) for e in block.get("except") or []
            ):
                return True
            continue
        ns_sel, pod_sel = p.get("namespaceSelector"), p.get("podSelector")
        # a podSelector alone means the policy's own namespace
        ns_ok = selects(ns_sel, peer.namespace_labels) if ns_sel is not None else (
            peer.namespace == namespace
        )  # fmt: skip
        if ns_ok and (pod_sel is None or selects(pod_sel, peer.labels)):
            return True
    return False


def _port_ok(ports: list[dict[str, Any]] | None, port: int, named: dict[str, int]) -> bool:
    if not ports:  # no "ports": every port
        return True
    for p in ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        want = p.get("port")
        if want is None:
            return True
        number = named.get(want) if isinstance(want, str) else want
        if number is not None and number <= port <= p.get("endPort", number):
            return True
    return False


def admits(policies: list[dict[str, Any]], pod: dict[str, Any], port: int, peer: Peer) -> bool:
    """Whether ``policies`` (of ``pod``'s namespace) admit ``peer`` to ``pod``:``port``."""
    labels = pod["metadata"].get("labels") or {}
    namespace = pod["metadata"]["namespace"]
    named = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"]
             for p in c.get("ports") or [] if p.get("name")}  # fmt: skip
    isolating = [
        np["spec"] for np in policies
        if selects(np["spec"].get("podSelector", {}), labels)
        and "Ingress" in np["spec"].get("policyTypes", ["Ingress"])
    ]  # fmt: skip
    if not isolating:
        return True
    return any(
        _port_ok(rule.get("ports"), port, named) and _from_ok(rule.get("from"), peer, namespace)
        for spec in isolating
        for rule in spec.get("ingress") or []
    )
