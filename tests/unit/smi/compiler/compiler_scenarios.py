"""Example scenarios the golden MeshPolicy files are compiled from.

`bookstore` follows the SMI/OSM bookstore demo; `spec_access_*` and `spec_l4` are the
examples of the SMI access specification (smi-spec `apis/traffic-access`); `splits` covers
every TrafficSplit version's weights and matches; `identity_binding` the access v1alpha4 draft;
`dangling` everything the compiler must skip and report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from compiler_fixtures import (
    binding,
    binding_ref,
    group,
    http_rule,
    match,
    sa,
    service,
    split,
    target,
    tcp,
    tcp_rule,
    udp,
    udp_rule,
)

from smi.apis.access.hub import Rule, Subject


@dataclass(frozen=True)
class Scenario:
    resources: list[Any]
    context: list[Any] = field(default_factory=list)


def bookstore() -> Scenario:
    return Scenario(
        resources=[
            group(
                "bookstore-service-routes",
                match(
                    "books-bought",
                    "/books-bought",
                    ["GET"],
                    {"user-agent": ".*-http-client/.*", "client-app": "bookbuyer"},
                ),
                match("buy-a-book", "/buy-a-book/new", ["GET"]),
                match("sell-a-book", "/sell-a-book", ["POST"]),
                ns="bookstore",
            ),
            target(
                "bookstore",
                ns="bookstore",
                dest=sa("bookstore", "bookstore"),
                sources=[sa("bookbuyer", "bookbuyer")],
                rules=[http_rule("bookstore-service-routes", "books-bought", "buy-a-book")],
            ),
            group(
                "bookwarehouse-service-routes",
                match("restock-books", "/restock-books$", ["POST"]),
                match("inventory", "/inventory/.*", ["GET", "HEAD"]),
                ns="bookwarehouse",
            ),
            target(
                "bookwarehouse",
                ns="bookwarehouse",
                dest=sa("bookwarehouse"),
                sources=[sa("bookstore", "bookstore")],
                rules=[http_rule("bookwarehouse-service-routes")],
            ),
            tcp("mysql", 3306, ns="bookwarehouse"),
            target(
                "mysql",
                ns="bookwarehouse",
                dest=sa("mysql", "bookwarehouse"),
                sources=[sa("bookwarehouse")],
                rules=[tcp_rule("mysql")],
            ),
            split(
                "bookstore-split",
                "bookstore.bookstore.svc.cluster.local",
                {"bookstore-v1": 50, "bookstore-v2": 50},
                ns="bookstore",
            ),
        ],
        context=[
            service("bookstore", 14001, ns="bookstore", app="bookstore"),
            service("bookstore-v1", 14001, ns="bookstore", app="bookstore", version="v1"),
            service("bookstore-v2", 14001, ns="bookstore", app="bookstore", version="v2"),
            service("bookwarehouse", 14001, ns="bookwarehouse", app="bookwarehouse"),
            service("mysql", 3306, ns="bookwarehouse", app="mysql"),
        ],
    )


def spec_access_v1alpha3() -> Scenario:
    """smi-spec traffic-access v1alpha3: "TrafficTarget" and "Example implementation for L7"."""
    return Scenario(
        resources=[
            tcp("the-routes", 8080),
            group(
                "the-routes",
                match("metrics", "/metrics", ["GET"]),
                match("everything", ".*", ["*"]),
            ),
            target(
                "path-specific",
                dest=sa("service-a", "default"),
                sources=[sa("prometheus", "default")],
                rules=[tcp_rule("the-routes"), http_rule("the-routes", "metrics")],
            ),
            tcp("api-service-port", 8080),
            group(
                "api-service-routes",
                match("api", "/api", ["*"]),
                match("metrics", "/metrics", ["GET"]),
            ),
            target(
                "api-service-metrics",
                dest=sa("api-service", "default"),
                sources=[sa("prometheus", "default")],
                rules=[tcp_rule("api-service-port"), http_rule("api-service-routes", "metrics")],
            ),
            target(
                "api-service-api",
                dest=sa("api-service", "default"),
                sources=[sa("website-service", "default"), sa("payments-service", "default")],
                rules=[tcp_rule("api-service-port"), http_rule("api-service-routes", "api")],
            ),
        ]
    )


def spec_access_v1alpha1() -> Scenario:
    """smi-spec traffic-access v1alpha1: `destination.port` 8080 and HTTP rules only."""
    return Scenario(
        resources=[
            group(
                "the-routes",
                match("metrics", "/metrics", ["GET"]),
                match("everything", ".*", ["*"]),
            ),
            target(
                "path-specific",
                dest=sa("service-a", "default", port=8080),
                sources=[sa("prometheus", "default")],
                rules=[http_rule("the-routes", "metrics")],
            ),
        ]
    )


def spec_l4() -> Scenario:
    """smi-spec traffic-access v1alpha3 "Example implementation for L4" (no namespace on the
    TrafficTarget: it lives in "default")."""
    tt = target(
        "protocal-specific",
        dest=sa("server", "default"),
        sources=[sa("client", "default")],
        rules=[tcp_rule("tcp-ports"), udp_rule("udp-ports")],
    )
    return Scenario(
        resources=[
            tcp("tcp-ports", 8301, 8302, 8300),
            udp("udp-ports", 8301, 8302),
            tt.model_copy(update={"metadata": tt.metadata.model_copy(update={"namespace": ""})}),
        ]
    )


def splits() -> Scenario:
    return Scenario(
        resources=[
            # split v1alpha1: quantities, "1 = 1000m"
            split("my-weights", "numbers", {"one": "10m", "two": "100m", "three": "1500m"}),
            # split v1alpha4: canary, root named by its cluster-local name
            split("canary", "website.default.svc", {"website-v1": 90, "website-v2": 10}),
            # split v1alpha3+: A/B test on a header, with a weight-0 backend
            group("ab-test", match("firefox-users", headers={"User-Agent": ".*Firefox.*"})),
            split("ab-test", "shop", {"shop-v1": 0, "shop-v2": 100}, matches=["ab-test"]),
            # rollout with a backend that does not exist yet: skipped, reported
            split("foobar-rollout", "foobar", {"foobar-v1": 1, "foobar-v2": 0}),
            # a second split for the same root: ignored, reported
            split("zz-second-canary", "website", {"website-v2": 1}),
            # a root in another namespace: skipped
            split("elsewhere", "website.other", {"website-v1": 1}),
            # matches that do not resolve: the whole split is dropped, never "split everything"
            split("dangling-ab", "cart", {"cart-v1": 1, "cart-v2": 1}, matches=["missing"]),
        ],
        context=[
            service("numbers", 80),
            service("one", 80),
            service("two", 80),
            service("three", 80),
            service("website", 80, 443),
            service("website-v1", 80, 443),
            service("website-v2", 80),
            service("shop", 8080),
            service("shop-v1", 8080),
            service("shop-v2", 8080),
            service("foobar-v1", 80),
            service("cart-v1", 80),
            service("cart-v2", 80),
        ],
    )


def identity_binding() -> Scenario:
    """smi-spec traffic-access v1alpha4 (draft): IdentityBinding subjects."""
    return Scenario(
        resources=[
            binding(
                "service-a",
                service_account="service-a",
                spiffe=[
                    "cluster.local/ns/default/sa/service-a",
                    "federated.trustdomain/boundary/boundaryName/identifierType/identifier",
                ],
                selector={"matchLabels": {"app": "service-a"}},
            ),
            binding("prometheus", service_account="prometheus"),
            tcp("the-routes", 8080),
            group("the-routes", match("metrics", "/metrics", ["GET"])),
            target(
                "path-specific",
                dest=binding_ref("service-a", "default"),
                sources=[binding_ref("prometheus", "default")],
                rules=[tcp_rule("the-routes"), http_rule("the-routes", "metrics")],
            ),
        ]
    )


def dangling() -> Scenario:
    return Scenario(
        resources=[
            group(
                "routes",
                match("ok", "/ok$", ["GET"]),
                match("backref", r"/(a)\1", ["GET"]),
                match("lookahead", "/x", headers={"cookie": "(?=evil)"}),
            ),
            target(
                "missing-group",
                dest=sa("api"),
                sources=[sa("web")],
                rules=[http_rule("no-such-group")],
            ),
            target(
                "missing-match",
                dest=sa("api"),
                sources=[sa("web")],
                rules=[http_rule("routes", "ok", "no-such-match", "backref")],
            ),
            target(
                "missing-tcp",
                dest=sa("db"),
                sources=[sa("api")],
                rules=[tcp_rule("no-such-tcproute")],
            ),
            target("no-sources", dest=sa("api"), sources=[], rules=[http_rule("routes")]),
            target(
                "other-namespace",
                dest=sa("api", "prod"),
                sources=[sa("web")],
                rules=[http_rule("routes")],
            ),
            target(
                "odd-kinds",
                dest=sa("api"),
                sources=[Subject(kind="Group", name="admins"), binding_ref("nobody")],
                rules=[Rule(kind="GRPCRoute", name="x")],
            ),
        ]
    )


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "bookstore": bookstore,
    "spec_access_v1alpha1": spec_access_v1alpha1,
    "spec_access_v1alpha3": spec_access_v1alpha3,
    "spec_l4": spec_l4,
    "splits": splits,
    "identity_binding": identity_binding,
    "dangling": dangling,
}
