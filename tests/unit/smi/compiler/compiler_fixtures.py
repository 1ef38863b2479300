"""Builders for hub objects, so compiler tests read like the manifests they stand for.

The compiler works on hub objects; building them here keeps these tests independent of the
loader. Weights are given as the manifests write them and converted like the loader does:
v1alpha2+ integers (w -> w * 1000 milli) or v1alpha1 quantities ("500m" -> 500).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from smi.apis.access.hub import (
    IdentityBinding,
    IdentityBindingSchemes,
    Rule,
    Subject,
    TrafficTarget,
)
from smi.apis.meta import ObjectMeta
from smi.apis.specs.hub import HTTPMatch, HTTPRouteGroup, TCPRoute, UDPRoute
from smi.apis.split.hub import Backend, MatchRef, TrafficSplit

TD = "cluster.local"
MANIFESTS = Path(__file__).parent / "manifests"

# (argv...) -> (exit code, stdout, stderr): the `run_cli` fixture
RunCli = Callable[..., tuple[int, str, str]]


def ident(ns: str, sa: str) -> str:
    return f"spiffe://{TD}/ns/{ns}/sa/{sa}"


def meta(name: str, ns: str = "default", **labels: str) -> ObjectMeta:
    return ObjectMeta(name=name, namespace=ns, labels=dict(labels))


def sa(name: str, ns: str = "", *, port: int | None = None) -> Subject:
    return Subject(kind="ServiceAccount", name=name, namespace=ns, port=port)


def binding_ref(name: str, ns: str = "") -> Subject:
    return Subject(kind="IdentityBinding", name=name, namespace=ns, group="access.smi-spec.io")


def http_rule(name: str, *matches: str) -> Rule:
    return Rule(kind="HTTPRouteGroup", name=name, matches=tuple(matches) if matches else None)


def tcp_rule(name: str) -> Rule:
    return Rule(kind="TCPRoute", name=name)


def udp_rule(name: str) -> Rule:
    return Rule(kind="UDPRoute", name=name)


def target(
    name: str,
    *,
    dest: Subject,
    sources: Sequence[Subject],
    rules: Sequence[Rule],
    ns: str = "default",
) -> TrafficTarget:
    return TrafficTarget(
        metadata=meta(name, ns), destination=dest, sources=tuple(sources), rules=tuple(rules)
    )


def match(
    name: str,
    path: str | None = None,
    methods: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTTPMatch:
    return HTTPMatch(
        name=name,
        path_regex=path,
        methods=None if methods is None else tuple(methods),
        headers=None if headers is None else tuple((k.lower(), v) for k, v in headers.items()),
    )


def group(name: str, *matches: HTTPMatch, ns: str = "default") -> HTTPRouteGroup:
    return HTTPRouteGroup(metadata=meta(name, ns), matches=tuple(matches))


def tcp(name: str, *ports: int, ns: str = "default") -> TCPRoute:
    return TCPRoute(metadata=meta(name, ns), ports=tuple(ports))


def udp(name: str, *ports: int, ns: str = "default") -> UDPRoute:
    return UDPRoute(metadata=meta(name, ns), ports=tuple(ports))


def milli(weight: int | str) -> int:
    """A manifest weight in milli-units: ints are v1alpha2+ weights, strings v1alpha1
    quantities (only the forms the tests use: "10m", "1", "1500m")."""
    if isinstance(weight, int):
        return weight * 1000
    if weight.endswith("m"):
        return int(weight[:-1])
    return int(weight) * 1000


def split(
    name: str,
    service: str,
    backends: Mapping[str, int | str],
    *,
    matches: Sequence[str] | None = None,
    ns: str = "default",
) -> TrafficSplit:
    return TrafficSplit(
        metadata=meta(name, ns),
        service=service,
        backends=tuple(Backend(service=s, weight_milli=milli(w)) for s, w in backends.items()),
        matches=None
        if matches is None
        else tuple(MatchRef(kind="HTTPRouteGroup", name=m) for m in matches),
    )


def binding(
    name: str,
    *,
    ns: str = "default",
    service_account: str | None = None,
    spiffe: Sequence[str] = (),
    selector: Mapping[str, Any] | None = None,
) -> IdentityBinding:
    return IdentityBinding(
        metadata=meta(name, ns),
        schemes=IdentityBindingSchemes(
            service_account=service_account,
            spiffe_identities=tuple(spiffe),
            pod_label_selector=None if selector is None else dict(selector),
        ),
    )


def service(name: str, *ports: int, ns: str = "default", **selector: str) -> dict[str, Any]:
    """A context Service manifest, as the loader keeps it."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": dict(selector), "ports": [{"port": p} for p in ports]},
    }
