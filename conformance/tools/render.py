"""SMI objects written out in each API version's own wire layout, for the scenario generator.

Deliberately independent of `smi.apis` and `smi.conversion`: the scenarios test those modules,
so they must not be produced by them. Each function takes the version and plain values and
returns the manifest a user of that version would write (flat v1alpha1/v1alpha2 layouts,
`specs` vs `rules`, `destination.port`, quantity weights, the two header wire forms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

HeaderForm = Literal["list", "map"]


@dataclass(frozen=True)
class Match:
    """One HTTPRouteGroup match. None = the field is left out of the manifest."""

    name: str
    path: str | None = None
    methods: tuple[str, ...] | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rule:
    kind: str
    name: str
    matches: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Subject:
    name: str
    namespace: str | None = None
    kind: str = "ServiceAccount"
    extra: dict[str, Any] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.namespace is not None:
            out["namespace"] = self.namespace
        out.update(self.extra)
        return out


def _meta(name: str, namespace: str) -> dict[str, str]:
    return {"name": name, "namespace": namespace}


def traffic_target(
    version: str,
    *,
    name: str,
    namespace: str,
    destination: Subject,
    sources: list[Subject],
    rules: list[Rule],
    port: int | None = None,
) -> dict[str, Any]:
    """access.smi-spec.io TrafficTarget; `port` only exists in v1alpha1/v1alpha2."""
    dest = destination.wire()
    if port is not None:
        if version not in ("v1alpha1", "v1alpha2"):
            raise ValueError(f"destination.port does not exist in access {version}")
        dest["port"] = port
    wire_rules = [_rule(r) for r in rules]
    body: dict[str, Any] = {"destination": dest}
    doc: dict[str, Any] = {
        "apiVersion": f"access.smi-spec.io/{version}",
        "kind": "TrafficTarget",
        "metadata": _meta(name, namespace),
    }
    if version == "v1alpha1":
        body["specs"] = wire_rules
        body["sources"] = [s.wire() for s in sources]
        return {**doc, **body}
    body["rules"] = wire_rules
    body["sources"] = [s.wire() for s in sources]
    return {**doc, "spec": body}


def _rule(r: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": r.kind, "name": r.name}
    if r.matches is not None:
        out["matches"] = list(r.matches)
    return out


def http_route_group(
    version: str,
    *,
    name: str,
    namespace: str,
    matches: list[Match],
    header_form: HeaderForm = "list",
) -> dict[str, Any]:
    """specs.smi-spec.io HTTPRouteGroup; flat in v1alpha1/v1alpha2, under `spec` later."""
    wire = [_match(m, version=version, header_form=header_form) for m in matches]
    doc: dict[str, Any] = {
        "apiVersion": f"specs.smi-spec.io/{version}",
        "kind": "HTTPRouteGroup",
        "metadata": _meta(name, namespace),
    }
    if version in ("v1alpha1", "v1alpha2"):
        return {**doc, "matches": wire}
    return {**doc, "spec": {"matches": wire}}


def _match(m: Match, *, version: str, header_form: HeaderForm) -> dict[str, Any]:
    out: dict[str, Any] = {"name": m.name}
    if m.path is not None:
        out["pathRegex"] = m.path
    if m.methods is not None:
        out["methods"] = list(m.methods)
    if m.headers:
        if version == "v1alpha1":
            raise ValueError("headers do not exist in specs v1alpha1")
        if header_form == "list":
            out["headers"] = [{k: v} for k, v in m.headers]
        else:
            out["headers"] = dict(m.headers)
    return out


def tcp_route(version: str, *, name: str, namespace: str, ports: list[int]) -> dict[str, Any]:
    """specs.smi-spec.io TCPRoute. Before v1alpha4 a TCPRoute has no ports (= every port),
    so `ports` must be empty there."""
    doc: dict[str, Any] = {
        "apiVersion": f"specs.smi-spec.io/{version}",
        "kind": "TCPRoute",
        "metadata": _meta(name, namespace),
    }
    if version in ("v1alpha1", "v1alpha2"):
        if ports:
            raise ValueError(f"TCPRoute ports do not exist in specs {version}")
        return doc
    if version == "v1alpha3":
        if ports:
            raise ValueError("TCPRoute ports do not exist in specs v1alpha3")
        return {**doc, "spec": {}}
    return {**doc, "spec": {"matches": {"ports": list(ports)}}}


def udp_route(version: str, *, name: str, namespace: str, ports: list[int]) -> dict[str, Any]:
    if version != "v1alpha4":
        raise ValueError(f"UDPRoute does not exist in specs {version}")
    return {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "UDPRoute",
        "metadata": _meta(name, namespace),
        "spec": {"matches": {"ports": list(ports)}},
    }


def traffic_split(
    version: str,
    *,
    name: str,
    namespace: str,
    service: str,
    backends: list[tuple[str, int | str]],
    matches: list[str] | None = None,
) -> dict[str, Any]:
    """split.smi-spec.io TrafficSplit. v1alpha1 weights are Kubernetes quantities (strings
    such as "500m"); later versions take integers. `matches` (v1alpha3+) name HTTPRouteGroups."""
    spec: dict[str, Any] = {"service": service}
    if matches is not None:
        if version in ("v1alpha1", "v1alpha2"):
            raise ValueError(f"TrafficSplit matches do not exist in split {version}")
        spec["matches"] = [{"kind": "HTTPRouteGroup", "name": m} for m in matches]
    spec["backends"] = [{"service": s, "weight": w} for s, w in backends]
    return {
        "apiVersion": f"split.smi-spec.io/{version}",
        "kind": "TrafficSplit",
        "metadata": _meta(name, namespace),
        "spec": spec,
    }
