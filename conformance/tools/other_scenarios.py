"""Generated scenarios of areas `conversion` (round trips through the hub between every ordered
pair of versions of a group, with lossy fields restored) and `modes` (audit, permissive), plus
the draft IdentityBinding."""

from __future__ import annotations

from typing import Any

from conformance.tools.cast import (
    CATALOG,
    FRONTEND,
    INTRUDER,
    LATEST,
    NS,
    PAYMENTS,
    allowed,
    apply,
    denied,
    everything_group,
    http_rule,
    request,
    sa,
    scenario,
    tcp_rule,
)
from conformance.tools.render import (
    Match,
    Rule,
    Subject,
    http_route_group,
    tcp_route,
    traffic_split,
    traffic_target,
    udp_route,
)

ACCESS = ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4")
SPECS = ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4")
SPLIT = ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4")


def _convert(key: str, to: str, expect: dict[str, Any]) -> dict[str, Any]:
    return {"convert": {"resource": key, "to": to}, "expect": expect}


def _layout(version: str, group: str, fields: dict[str, Any], *, flat: bool) -> dict[str, Any]:
    """What the converted object must contain: the target version and its own layout."""
    body = fields if flat else {"spec": fields}
    return {"apiVersion": f"{group}/{version}", **body}


def traffictarget(source: str) -> dict[str, Any]:
    rules = [Rule("HTTPRouteGroup", "the-routes", ("metrics",)), Rule("TCPRoute", "tcp")]
    tt = traffic_target(
        source,
        name="path-specific",
        namespace=NS,
        destination=sa("catalog"),
        sources=[sa("prometheus", "ops")],
        rules=rules,
        port=8080 if source in ("v1alpha1", "v1alpha2") else None,
    )
    resources = {"tt": tt}
    steps = []
    for target in ACCESS:
        if target == source:
            continue
        fields = {"destination": {"name": "catalog"}}
        steps.append(
            _convert(
                "tt",
                f"access.smi-spec.io/{target}",
                {
                    "round_trip": True,
                    "contains": _layout(
                        target, "access.smi-spec.io", fields, flat=target == "v1alpha1"
                    ),
                },
            )
        )
    if source in ("v1alpha3", "v1alpha4"):
        resources["tt-udp"] = traffic_target(
            source,
            name="protocol-specific",
            namespace=NS,
            destination=sa("catalog"),
            sources=[sa("client")],
            rules=[Rule("TCPRoute", "tcp"), Rule("UDPRoute", "udp")],
        )
        for target in ACCESS:
            if target == source:
                continue
            # Below v1alpha3 the UDPRoute rule rides in the lossy-fields annotation.
            expect: dict[str, Any] = {"round_trip": True}
            steps.append(_convert("tt-udp", f"access.smi-spec.io/{target}", expect))
    return scenario(
        description=f"A TrafficTarget of access {source} converts to every other access version "
        "and back without losing anything (`destination.port` and the `specs`/`rules` rename "
        "included)"
        + (
            "; one with a UDPRoute rule too: access v1alpha1/v1alpha2 have no UDPRoute, so "
            "the rule rides in the lossy-fields annotation and comes back in place."
            if source in ("v1alpha3", "v1alpha4")
            else "."
        ),
        capability="conversion/access",
        decisions=["conversion-lossless", "every-version-accepted"],
        workloads=[],
        resources=resources,
        steps=steps,
    )


def identitybinding() -> dict[str, Any]:
    ib = {
        "apiVersion": "access.smi-spec.io/v1alpha4",
        "kind": "IdentityBinding",
        "metadata": {"name": "frontend", "namespace": NS},
        "spec": {"schemes": {"serviceAccount": "frontend"}},
    }
    return scenario(
        description="IdentityBinding exists only in access v1alpha4: converting it to an older "
        "version fails with a reason.",
        capability="conversion/access",
        decisions=["conversion-lossless"],
        workloads=[],
        resources={"ib": ib},
        steps=[
            _convert(
                "ib",
                "access.smi-spec.io/v1alpha3",
                {"round_trip": False, "error": "SMI4002|has no kind IdentityBinding"},
            )
        ],
    )


def httproutegroup(source: str) -> dict[str, Any]:
    headers = (("user-agent", ".*Android.*"),) if source != "v1alpha1" else ()
    group = http_route_group(
        source,
        name="the-routes",
        namespace=NS,
        matches=[
            Match("metrics", path="/metrics$", methods=("GET",), headers=headers),
            Match("health", path="/ping$", methods=("*",)),
        ],
    )
    steps = []
    for target in SPECS:
        if target != source:
            fields = {"matches": [{"name": "metrics"}, {"name": "health"}]}
            flat = target in ("v1alpha1", "v1alpha2")
            steps.append(
                _convert(
                    "routes",
                    f"specs.smi-spec.io/{target}",
                    {
                        "round_trip": True,
                        "contains": _layout(target, "specs.smi-spec.io", fields, flat=flat),
                    },
                )
            )
    return scenario(
        description=f"An HTTPRouteGroup of specs {source} converts to every other specs version "
        "and back (flat and `spec` layouts; headers kept even through v1alpha1, which has none).",
        capability="conversion/specs",
        decisions=["conversion-lossless", "header-forms"],
        workloads=[],
        resources={"routes": group},
        steps=steps,
    )


def l4_routes() -> dict[str, Any]:
    tcp = tcp_route("v1alpha4", name="db", namespace=NS, ports=[3306, 6446])
    udp = udp_route("v1alpha4", name="dns", namespace=NS, ports=[53])
    steps = [
        _convert(
            "tcp", f"specs.smi-spec.io/{t}", {"round_trip": True, "contains": {"kind": "TCPRoute"}}
        )
        for t in SPECS[:3]
    ]
    steps.append(
        _convert(
            "udp",
            "specs.smi-spec.io/v1alpha3",
            {"round_trip": False, "error": "SMI4002|has no kind UDPRoute"},
        )
    )
    return scenario(
        description="A TCPRoute with ports (specs v1alpha4) survives a trip through the "
        "port-less older versions; a UDPRoute cannot be converted to a version without "
        "UDPRoute.",
        capability="conversion/specs",
        decisions=["conversion-lossless"],
        workloads=[],
        resources={"tcp": tcp, "udp": udp},
        steps=steps,
    )


def trafficsplit(source: str) -> dict[str, Any]:
    if source == "v1alpha1":
        backends: list[tuple[str, int | str]] = [("catalog-v1", "500m"), ("catalog-v2", "1500m")]
    else:
        backends = [("catalog-v1", 90), ("catalog-v2", 10)]
    matches = ["beta-users"] if source in ("v1alpha3", "v1alpha4") else None
    split = traffic_split(
        source,
        name="catalog-rollout",
        namespace=NS,
        service="catalog",
        backends=backends,
        matches=matches,
    )
    steps = [
        _convert(
            "split",
            f"split.smi-spec.io/{t}",
            {
                "round_trip": True,
                "contains": {
                    "apiVersion": f"split.smi-spec.io/{t}",
                    "spec": {"service": "catalog"},
                },
            },
        )
        for t in SPLIT
        if t != source
    ]
    steps.append(
        _convert(
            "split",
            "access.smi-spec.io/v1alpha3",
            {"round_trip": False, "error": r"SMI4003|belongs to split\.smi-spec\.io"},
        )
    )
    return scenario(
        description=f"A TrafficSplit of split {source} converts to every other split version "
        "and back (quantity and integer weights, `matches`); converting it to another API "
        "group fails.",
        capability="conversion/split",
        decisions=["conversion-lossless", "split-relative-weights"],
        workloads=[],
        resources={"split": split},
        steps=steps,
    )


def _tt(rules: list[Rule], **kw: Any) -> dict[str, Any]:
    kw.setdefault("name", "catalog-access")
    kw.setdefault("destination", sa("catalog"))
    kw.setdefault("sources", [sa("frontend")])
    return traffic_target(LATEST.access, namespace=NS, rules=rules, **kw)


def audit() -> dict[str, Any]:
    group = http_route_group(
        LATEST.specs,
        name="books",
        namespace=NS,
        matches=[Match("read", path="/books", methods=("GET",))],
    )
    return scenario(
        description="Audit mode enforces nothing but records every request that deny mode "
        "would refuse; requests a TrafficTarget allows are not recorded.",
        capability="modes/audit",
        decisions=["mode-audit"],
        mode="audit",
        workloads=[FRONTEND, INTRUDER, CATALOG, PAYMENTS],
        resources={"books": group, "tt": _tt([http_rule("books")])},
        steps=[
            apply("books", "tt"),
            request(
                "shop/frontend", "catalog", {**allowed(2), "would_deny": 0}, path="/books", count=2
            ),
            request(
                "shop/intruder",
                "catalog",
                {**allowed(3), "would_deny": 3},
                path="/books",
                count=3,
                name="not in sources: passes, recorded",
            ),
            request(
                "shop/frontend",
                "catalog",
                {**allowed(), "would_deny": 1},
                method="POST",
                path="/books",
                name="no matching rule: passes, recorded",
            ),
            request(
                "shop/frontend",
                "payments",
                {**allowed(), "would_deny": 1},
                name="no TrafficTarget at all: passes, recorded",
            ),
        ],
    )


def permissive() -> dict[str, Any]:
    return scenario(
        description="Permissive mode allows everything, with or without TrafficTargets: "
        "policies are inert.",
        capability="modes/permissive",
        decisions=["mode-permissive"],
        mode="permissive",
        workloads=[FRONTEND, INTRUDER, CATALOG],
        resources={"routes": everything_group(LATEST), "tt": _tt([http_rule("everything")])},
        steps=[
            request("shop/intruder", "catalog", allowed(3, identity="shop/intruder"), count=3),
            apply("routes", "tt"),
            request("shop/intruder", "catalog", allowed(2), method="DELETE", path="/all", count=2),
            request("shop/frontend", "catalog", allowed(identity="shop/frontend")),
        ],
    )


def identity_binding() -> dict[str, Any]:
    combo = LATEST
    ib = {
        "apiVersion": "access.smi-spec.io/v1alpha4",
        "kind": "IdentityBinding",
        "metadata": {"name": "storefront", "namespace": NS},
        "spec": {"schemes": {"serviceAccount": "frontend"}},
    }
    binding = Subject(
        "storefront", NS, kind="IdentityBinding", extra={"group": "access.smi-spec.io"}
    )
    tt = traffic_target(
        "v1alpha4",
        name="catalog-access",
        namespace=NS,
        destination=sa("catalog"),
        sources=[binding],
        rules=[tcp_rule("all-ports")],
    )
    return scenario(
        description="access v1alpha4 (draft): a TrafficTarget source may be an IdentityBinding; "
        "its ServiceAccount scheme names the workloads allowed (on a TCPRoute for every port, "
        "which a proxy may carry at L4).",
        capability="traffic-access/identity-binding",
        decisions=["sources-and-rules", "every-version-accepted"],
        workloads=[FRONTEND, INTRUDER, CATALOG],
        resources={
            "all-ports": tcp_route(combo.specs, name="all-ports", namespace=NS, ports=[]),
            "binding": ib,
            "tt": tt,
        },
        steps=[
            apply("all-ports", "binding", "tt"),
            request("shop/frontend", "catalog", allowed()),
            request("shop/intruder", "catalog", denied(http=False)),
        ],
    )


def generate() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for v in ACCESS:
        out[f"conversion/traffictarget.from-access-{v}"] = traffictarget(v)
    out["conversion/identitybinding.access-v1alpha4"] = identitybinding()
    for v in SPECS:
        out[f"conversion/httproutegroup.from-specs-{v}"] = httproutegroup(v)
    out["conversion/l4-routes.from-specs-v1alpha4"] = l4_routes()
    for v in SPLIT:
        out[f"conversion/trafficsplit.from-split-{v}"] = trafficsplit(v)
    out["modes/audit.v0.6.0"] = audit()
    out["modes/permissive.v0.6.0"] = permissive()
    out["access/identity-binding.access-v1alpha4.specs-v1alpha4"] = identity_binding()
    return out
