"""Generated scenarios of area `access`: TrafficTarget authorization in every access/specs
version pair that can express each behaviour (DESIGN.md §3 "TrafficTarget")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.tools.cast import (
    ACCESS_COMBOS,
    CATALOG,
    CATALOG_L4,
    CATALOG_PORTS,
    CHECKOUT,
    FRONTEND,
    INTRUDER,
    LATEST,
    MONITOR,
    NS,
    OPS_FRONTEND,
    PAYMENTS,
    REFUSED,
    SHOP_MONITOR,
    AccessCombo,
    admit,
    all_ports_route,
    allowed,
    apply,
    catalog_tt,
    connect,
    delete,
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
    http_route_group,
    tcp_route,
    udp_route,
)

Builder = Callable[[AccessCombo], dict[str, Any]]


def default_deny(combo: AccessCombo) -> dict[str, Any]:
    return scenario(
        description="A destination with no TrafficTarget accepts nothing: not with no SMI "
        "objects at all, not with route groups alone, not with a TrafficTarget for another "
        "destination.",
        capability="traffic-access/default-deny",
        decisions=["default-deny", "mode-deny"],
        workloads=[FRONTEND, CATALOG, PAYMENTS],
        resources={
            "routes": everything_group(combo),
            "payments-access": catalog_tt(
                combo,
                [http_rule("everything")],
                name="payments-access",
                destination=sa("payments"),
            ),
        },
        steps=[
            request("shop/frontend", "catalog", denied(3), count=3, name="no SMI objects"),
            apply("routes"),
            request("shop/frontend", "catalog", denied(2), count=2, name="a route group alone"),
            apply("payments-access"),
            request("shop/frontend", "payments", allowed(identity="shop/frontend")),
            request(
                "shop/frontend",
                "catalog",
                denied(2),
                method="POST",
                path="/orders",
                count=2,
                name="a TrafficTarget for another destination",
            ),
        ],
    )


def allow_by_traffictarget(combo: AccessCombo) -> dict[str, Any]:
    return scenario(
        description="A TrafficTarget allows its sources, on its rules, to its destination; a "
        "caller not in the sources stays denied. The destination sees the caller's identity.",
        capability="traffic-access/allow",
        decisions=["sources-and-rules", "identity-serviceaccount", "every-version-accepted"],
        workloads=[FRONTEND, INTRUDER, CATALOG],
        resources={
            "routes": everything_group(combo),
            "tt": catalog_tt(combo, [http_rule("everything")]),
        },
        steps=[
            apply("routes", "tt"),
            request("shop/frontend", "catalog", allowed(5, identity="shop/frontend"), count=5),
            request(
                "shop/frontend",
                "catalog:8080",
                allowed(identity="shop/frontend"),
                method="POST",
                path="/orders/17",
            ),
            request("shop/intruder", "catalog", denied(3), count=3, name="caller not in sources"),
        ],
    )


def tcproute_allows_http(combo: AccessCombo) -> dict[str, Any]:
    ports = "`ports: []`" if combo.has_ports else "no ports (every port)"
    return scenario(
        description=f"A TrafficTarget whose only rule is a TCPRoute with {ports} allows HTTP "
        "traffic of any method and path, on every port, to its sources (SMI conformance suite "
        "behaviour). Only TCPRoutes cover these ports, so a proxy may carry them at L4: a "
        "denied caller may see its connection closed rather than a 403, and the app is not "
        "told the caller's identity.",
        capability="traffic-access/tcproute",
        decisions=["tcproute-allows-all-traffic"],
        workloads=[FRONTEND, INTRUDER, CATALOG_PORTS],
        resources={
            "all-ports": all_ports_route(combo),
            "tt": catalog_tt(combo, [tcp_rule("all-ports")]),
        },
        steps=[
            apply("all-ports", "tt"),
            request(
                "shop/frontend",
                "catalog:8080",
                allowed(2),
                path="/anything/at/all",
                count=2,
            ),
            request("shop/frontend", "catalog:9090", allowed(), method="DELETE", path="/x"),
            request("shop/intruder", "catalog:8080", denied(2, http=False), count=2),
        ],
    )


def ports(combo: AccessCombo) -> dict[str, Any]:
    if combo.has_ports:
        resources = {
            "port-8080": tcp_route(combo.specs, name="port-8080", namespace=NS, ports=[8080]),
            "tt": catalog_tt(combo, [tcp_rule("port-8080")]),
        }
        how = "a TCPRoute rule with ports [8080]"
        tcp_steps = [
            request(
                "shop/frontend",
                "catalog:8080",
                allowed(http=False),
                protocol="tcp",
                name="TCP to the listed port",
            ),
            request(
                "shop/frontend",
                "catalog:9090",
                denied(http=False),
                protocol="tcp",
                name="TCP to another port",
            ),
            request(
                "shop/intruder",
                "catalog:8080",
                denied(http=False),
                protocol="tcp",
                name="TCP to the listed port from a caller no TrafficTarget names",
            ),
        ]
    else:
        resources = {
            "routes": everything_group(combo),
            "tt": catalog_tt(combo, [http_rule("everything")], port=8080),
        }
        how = "`destination.port: 8080`"
        tcp_steps = []
    return scenario(
        description=f"A TrafficTarget restricted by {how} allows traffic to port 8080 and "
        "blocks port 9090 of the same destination.",
        capability="traffic-access/ports",
        decisions=["tcproute-allows-all-traffic", "sources-and-rules"],
        workloads=[FRONTEND, *([INTRUDER] if tcp_steps else []), CATALOG_PORTS],
        resources=resources,
        steps=[
            apply(*resources),
            request("shop/frontend", "catalog:8080", allowed(3), count=3),
            request("shop/frontend", "catalog:9090", denied(3), count=3),
            *tcp_steps,
        ],
    )


def rule_kinds_union(combo: AccessCombo) -> dict[str, Any]:
    group = http_route_group(
        combo.specs,
        name="metrics",
        namespace=NS,
        matches=[Match("metrics", path="/metrics$", methods=("GET",))],
    )
    return scenario(
        description="A TCPRoute rule (port 8080) and an HTTPRouteGroup rule (GET /metrics) in "
        "one TrafficTarget are a union: anything on 8080, and GET /metrics on any port.",
        capability="traffic-access/rule-kinds",
        decisions=["rule-kinds-union", "tcproute-allows-all-traffic"],
        workloads=[FRONTEND, CATALOG_PORTS],
        resources={
            "port-8080": tcp_route(combo.specs, name="port-8080", namespace=NS, ports=[8080]),
            "metrics": group,
            "tt": catalog_tt(combo, [tcp_rule("port-8080"), http_rule("metrics", ("metrics",))]),
        },
        steps=[
            apply("port-8080", "metrics", "tt"),
            request("shop/frontend", "catalog:8080", allowed(), method="POST", path="/orders"),
            request("shop/frontend", "catalog:9090", allowed(), path="/metrics"),
            request("shop/frontend", "catalog:9090", denied(), path="/orders"),
            request("shop/frontend", "catalog:9090", denied(), method="POST", path="/metrics"),
        ],
    )


def udp(combo: AccessCombo) -> dict[str, Any]:
    return scenario(
        description="TCP and UDP rules are evaluated per protocol (SMI access v1alpha3 L4 "
        "example): TCPRoute ports {8300, 8301, 8302} and UDPRoute ports {8301, 8302} allow TCP "
        "on all three, UDP on 8301 and 8302 only.",
        capability="traffic-access/udp",
        decisions=["udproute-ports", "rule-kinds-union"],
        workloads=[FRONTEND, INTRUDER, CATALOG_L4],
        resources={
            "tcp-ports": tcp_route(
                combo.specs, name="tcp-ports", namespace=NS, ports=[8300, 8301, 8302]
            ),
            "udp-ports": udp_route(combo.specs, name="udp-ports", namespace=NS, ports=[8301, 8302]),
            "tt": catalog_tt(
                combo, [tcp_rule("tcp-ports"), Rule(kind="UDPRoute", name="udp-ports")]
            ),
        },
        steps=[
            apply("tcp-ports", "udp-ports", "tt"),
            request("shop/frontend", "catalog:8300", allowed(http=False), protocol="tcp"),
            request(
                "shop/frontend",
                "catalog:8300",
                denied(http=False),
                protocol="udp",
                name="UDP 8300 is blocked",
            ),
            request(
                "shop/frontend", "catalog:8301", allowed(2, http=False), protocol="udp", count=2
            ),
            request("shop/frontend", "catalog:8302", allowed(http=False), protocol="udp"),
            request("shop/intruder", "catalog:8301", denied(http=False), protocol="udp"),
        ],
    )


def several_traffictargets(combo: AccessCombo) -> dict[str, Any]:
    group = http_route_group(
        combo.specs,
        name="store",
        namespace=NS,
        matches=[
            Match("read", path="/books", methods=("GET",)),
            Match("write", path="/orders", methods=("POST",)),
        ],
    )
    return scenario(
        description="Two TrafficTargets for one destination are a union: each allows its own "
        "sources on its own rules, and deleting one leaves the other in force.",
        capability="traffic-access/union",
        decisions=["traffictargets-union", "sources-and-rules"],
        workloads=[FRONTEND, CHECKOUT, CATALOG],
        resources={
            "store": group,
            "readers": catalog_tt(combo, [http_rule("store", ("read",))], name="readers"),
            "writers": catalog_tt(
                combo, [http_rule("store", ("write",))], name="writers", sources=[sa("checkout")]
            ),
        },
        steps=[
            apply("store", "readers", "writers"),
            request("shop/frontend", "catalog", allowed(), path="/books/9"),
            request("shop/frontend", "catalog", denied(), method="POST", path="/orders"),
            request("shop/checkout", "catalog", allowed(), method="POST", path="/orders"),
            request("shop/checkout", "catalog", denied(), path="/books/9"),
            delete("readers"),
            request("shop/frontend", "catalog", denied(), path="/books/9"),
            request("shop/checkout", "catalog", allowed(), method="POST", path="/orders"),
        ],
    )


def cross_namespace_sources(combo: AccessCombo) -> dict[str, Any]:
    tt = catalog_tt(
        combo, [http_rule("everything")], sources=[sa("monitor", "ops"), sa("frontend", None)]
    )
    return scenario(
        description="A source in another namespace is allowed by namespace and name; the same "
        "ServiceAccount name in another namespace is not. A source without a namespace means "
        "the TrafficTarget's namespace (admission warns).",
        capability="traffic-access/cross-namespace",
        decisions=["source-namespace-default", "sources-and-rules"],
        workloads=[FRONTEND, OPS_FRONTEND, MONITOR, SHOP_MONITOR, CATALOG],
        resources={"routes": everything_group(combo), "tt": tt},
        steps=[
            apply("routes"),
            admit("tt", allowed=True, warning="SMI2406", name="source without namespace warns"),
            apply("tt"),
            request("ops/monitor", "catalog.shop", allowed(identity="ops/monitor")),
            request("shop/monitor", "catalog", denied(), name="same name, other namespace"),
            request("shop/frontend", "catalog", allowed(identity="shop/frontend")),
            request(
                "ops/frontend",
                "catalog.shop",
                denied(),
                name="the namespace-less source is the TrafficTarget's namespace",
            ),
        ],
    )


def delete_revokes(combo: AccessCombo) -> dict[str, Any]:
    return scenario(
        description="Deleting a TrafficTarget revokes access at once; deleting the route group "
        "it references does too (a dangling reference never allows); re-creating restores it.",
        capability="traffic-access/revoke",
        decisions=["dangling-references", "sources-and-rules"],
        workloads=[FRONTEND, CATALOG],
        resources={
            "routes": everything_group(combo),
            "tt": catalog_tt(combo, [http_rule("everything")]),
        },
        steps=[
            apply("routes", "tt"),
            request("shop/frontend", "catalog", allowed(3), count=3),
            delete("tt"),
            request("shop/frontend", "catalog", denied(3), count=3),
            apply("tt"),
            request("shop/frontend", "catalog", allowed()),
            delete("routes"),
            request("shop/frontend", "catalog", denied(2), count=2),
            apply("routes"),
            request("shop/frontend", "catalog", allowed()),
        ],
    )


def dangling_references(combo: AccessCombo) -> dict[str, Any]:
    return scenario(
        description="Objects may be created in any order: a TrafficTarget whose route group does "
        "not exist yet is accepted with a warning and allows nothing until the group exists; a "
        "rule naming an unknown match allows nothing.",
        capability="traffic-access/references",
        decisions=["dangling-references"],
        workloads=[FRONTEND, CATALOG],
        resources={
            "routes": everything_group(combo),
            "tt": catalog_tt(combo, [http_rule("everything")]),
            "unknown-match": catalog_tt(
                combo, [http_rule("everything", ("nope",))], name="unknown-match"
            ),
        },
        steps=[
            admit("tt", allowed=True, warning="SMI3001"),
            apply("tt"),
            request("shop/frontend", "catalog", denied(2), count=2),
            apply("routes"),
            request("shop/frontend", "catalog", allowed(2), count=2),
            delete("tt"),
            admit("unknown-match", allowed=True, warning="SMI3002"),
            apply("unknown-match"),
            request("shop/frontend", "catalog", denied()),
        ],
    )


def strict_references(combo: AccessCombo) -> dict[str, Any]:
    return scenario(
        description="`smictl admit --strict` turns the warnings about references that do not "
        "resolve (route group, match name) into refusals.",
        capability="admission/strict",
        decisions=["dangling-references"],
        workloads=[],
        resources={
            "routes": everything_group(combo),
            "tt": catalog_tt(combo, [http_rule("everything")]),
            "unknown-match": catalog_tt(
                combo, [http_rule("everything", ("nope",))], name="unknown-match"
            ),
        },
        steps=[
            admit("tt", allowed=False, strict=True, message="SMI3001"),
            apply("routes"),
            admit("tt", allowed=True, strict=True, name="--strict accepts it once it resolves"),
            admit("unknown-match", allowed=False, strict=True, message="SMI3002"),
        ],
    )


# Every spelling of x-smi-source-identity that a CGI or WSGI app reads as the same variable
# (`-` or `_` at each of its three places), in varied case: smictl proxy drops them all.
SOURCE_HEADER_SPELLINGS = (
    "x-smi-source-identity",
    "X_Smi_Source_Identity",
    "x_smi-source-identity",
    "X-Smi_Source-Identity",
    "x-smi-source_identity",
    "X_SMI_SOURCE-IDENTITY",
    "x_smi-source_identity",
    "X-Smi_Source_Identity",
)
FRONTEND_ID = "spiffe://cluster.local/ns/shop/sa/frontend"


def _identity_probes() -> list[dict[str, Any]]:
    """Connections straight to catalog's inbound listener, where no caller's sidecar drops a
    forged header or presents its own certificate for it."""
    forged = [
        connect(
            "catalog",
            denied(),
            identity="shop/intruder",
            headers={spelling: FRONTEND_ID},
            name=f"intruder's certificate, {spelling} naming the frontend: denied",
        )
        for spelling in SOURCE_HEADER_SPELLINGS
    ]
    admin = "spiffe://cluster.local/ns/ops/sa/admin"
    return [
        *forged,
        connect(
            "catalog",
            allowed(identity="shop/frontend"),
            identity="shop/frontend",
            headers=dict.fromkeys(SOURCE_HEADER_SPELLINGS, admin),
            name="frontend's certificate, every spelling naming ops/admin: seen as the frontend",
        ),
        connect(
            "catalog",
            REFUSED,
            identity="shop/frontend",
            certificate="foreign-ca",
            name="a certificate for the frontend from another CA: handshake refused",
        ),
        connect(
            "catalog.shop",
            REFUSED,
            certificate="none",
            headers={"x-smi-source-identity": FRONTEND_ID},
            name="no certificate, x-smi-source-identity naming the frontend: handshake refused",
        ),
        connect(
            "catalog",
            REFUSED,
            identity="shop/frontend",
            certificate="expired",
            name="the frontend's mesh certificate, expired: handshake refused",
        ),
    ]


def identity(combo: AccessCombo) -> dict[str, Any]:
    spoof = {"x-smi-source-identity": FRONTEND_ID}
    return scenario(
        description="The caller's identity comes from its certificate, never from a header: an "
        "intruder claiming to be the frontend in x-smi-source-identity is denied, and the "
        "destination sees the real caller even when the caller sends that header. Straight "
        "to the destination's inbound listener (no caller sidecar to drop the header): the "
        "intruder's certificate with the header in any spelling is denied, and a certificate "
        "from another CA, an expired one, or none at all is refused at the handshake.",
        capability="traffic-access/identity",
        decisions=["identity-from-mtls-only", "identity-serviceaccount"],
        workloads=[FRONTEND, INTRUDER, CATALOG],
        resources={
            "routes": everything_group(combo),
            "tt": catalog_tt(combo, [http_rule("everything")]),
        },
        steps=[
            apply("routes", "tt"),
            request("shop/intruder", "catalog", denied(2), headers=spoof, count=2),
            request(
                "shop/frontend",
                "catalog",
                allowed(identity="shop/frontend"),
                headers={"x-smi-source-identity": "spiffe://cluster.local/ns/ops/sa/admin"},
            ),
            *_identity_probes(),
        ],
    )


ALL = ACCESS_COMBOS
L4 = tuple(c for c in ACCESS_COMBOS if c.has_ports)
HEADERS = tuple(c for c in ACCESS_COMBOS if c.has_headers)

BEHAVIOURS: dict[str, tuple[Builder, tuple[AccessCombo, ...]]] = {
    "default-deny": (default_deny, ALL),
    "allow-by-traffictarget": (allow_by_traffictarget, ALL),
    "tcproute-allows-http": (tcproute_allows_http, ALL),
    "ports": (ports, ALL),
    "rule-kinds-union": (rule_kinds_union, L4),
    "udp": (udp, L4),
    "several-traffictargets": (several_traffictargets, ALL),
    "cross-namespace-sources": (cross_namespace_sources, ALL),
    "delete-revokes": (delete_revokes, ALL),
    "dangling-references": (dangling_references, ALL),
    "strict-references": (strict_references, ALL),
    "identity": (identity, (LATEST,)),
}


# Behaviours written with the TrafficTarget helpers here but about admission.
AREAS = {"strict-references": "admission"}


def generate() -> dict[str, dict[str, Any]]:
    """Scenario name -> document."""
    out: dict[str, dict[str, Any]] = {}
    for behaviour, (build, combos) in BEHAVIOURS.items():
        area = AREAS.get(behaviour, "access")
        for combo in combos:
            out[f"{area}/{behaviour}.{combo.tag}"] = build(combo)
    return out
