"""`authorize` truth tables: every decision of DESIGN.md §3, on compiled policies.

Each row is (caller, callee, port, method, path, headers) -> (allowed, reason[, TrafficTarget]).
Policies are compiled from hub objects with the real compiler, so these tables test what a
proxy would enforce for those manifests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from compiler_fixtures import (
    binding,
    binding_ref,
    group,
    http_rule,
    ident,
    match,
    sa,
    target,
    tcp,
    tcp_rule,
    udp,
    udp_rule,
)
from compiler_scenarios import SCENARIOS

from smi.compiler.build import compile
from smi.compiler.ir import (
    AuthzRule,
    HttpMatch,
    MeshPolicy,
    Mode,
    PolicyIndex,
    authorize,
)
from smi.compiler.ir.decision import REASONS

Row = tuple[str | None, str, int, str | None, str | None, dict[str, str] | None, bool, str]


def index_of(resources: Sequence[Any], *, mode: Mode = "deny") -> PolicyIndex:
    return PolicyIndex.build(compile(resources, mode=mode).policy)


def check(index: PolicyIndex, rows: Sequence[Row]) -> None:
    for source, dest, port, method, path, headers, allowed, reason in rows:
        d = authorize(index, source, dest, port, method, path, headers)
        assert (d.allowed, d.reason) == (allowed, reason), (source, dest, port, method, path, d)
        assert d.reason in REASONS


def scenario_index(name: str) -> PolicyIndex:
    s = SCENARIOS[name]()
    return PolicyIndex.build(compile(s.resources, context=s.context).policy)


BOOKBUYER = ident("bookbuyer", "bookbuyer")
BOOKTHIEF = ident("bookthief", "bookthief")
BOOKSTORE = ident("bookstore", "bookstore")
WAREHOUSE = ident("bookwarehouse", "bookwarehouse")
MYSQL = ident("bookwarehouse", "mysql")
CLIENT_HEADERS = {"user-agent": "go-http-client/1.1", "client-app": "bookbuyer"}


def test_bookstore_truth_table() -> None:
    check(
        scenario_index("bookstore"),
        [
            # a source in `sources` calling one of its named matches
            (BOOKBUYER, BOOKSTORE, 14001, "GET", "/buy-a-book/new", None, True, "allow"),
            (BOOKBUYER, BOOKSTORE, 14001, "GET", "/buy-a-book/new?id=7", None, True, "allow"),
            # books-bought needs both headers (AND within a match)
            (BOOKBUYER, BOOKSTORE, 14001, "GET", "/books-bought", CLIENT_HEADERS, True, "allow"),
            (
                BOOKBUYER,
                BOOKSTORE,
                14001,
                "GET",
                "/books-bought",
                {"user-agent": "go-http-client/1.1"},
                False,
                "no-route-match",
            ),
            (
                BOOKBUYER,
                BOOKSTORE,
                14001,
                "GET",
                "/books-bought",
                {**CLIENT_HEADERS, "client-app": "bookthief"},
                False,
                "no-route-match",
            ),
            # sell-a-book exists in the group but the rule does not name it
            (BOOKBUYER, BOOKSTORE, 14001, "POST", "/sell-a-book", None, False, "no-route-match"),
            (BOOKBUYER, BOOKSTORE, 14001, "POST", "/buy-a-book/new", None, False, "no-route-match"),
            # bookthief is in no TrafficTarget's sources
            (
                BOOKTHIEF,
                BOOKSTORE,
                14001,
                "GET",
                "/buy-a-book/new",
                None,
                False,
                "source-not-allowed",
            ),
            # no TrafficTarget at all for the bookbuyer identity
            (BOOKSTORE, BOOKBUYER, 14001, "GET", "/", None, False, "no-traffic-target"),
            (None, BOOKSTORE, 14001, "GET", "/buy-a-book/new", None, False, "no-identity"),
            # a rule without `matches` covers every match of the group
            (BOOKSTORE, WAREHOUSE, 14001, "POST", "/restock-books", None, True, "allow"),
            (BOOKSTORE, WAREHOUSE, 14001, "HEAD", "/inventory/42", None, True, "allow"),
            (
                BOOKSTORE,
                WAREHOUSE,
                14001,
                "POST",
                "/restock-books/now",
                None,
                False,
                "no-route-match",
            ),
            (BOOKSTORE, WAREHOUSE, 14001, "DELETE", "/inventory/42", None, False, "no-route-match"),
            # the bookwarehouse source has no namespace: it means the TrafficTarget's
            (WAREHOUSE, MYSQL, 3306, "GET", "/", None, True, "allow"),
            (WAREHOUSE, MYSQL, 3307, "GET", "/", None, False, "port-not-allowed"),
        ],
    )


def test_allow_names_the_traffic_target_and_the_match() -> None:
    index = scenario_index("bookstore")
    d = authorize(index, BOOKBUYER, BOOKSTORE, 14001, "GET", "/buy-a-book/new", {})
    assert d.rules == ("bookstore/TrafficTarget/bookstore",)
    assert d.detail == "bookstore/HTTPRouteGroup/bookstore-service-routes#buy-a-book"
    d = authorize(index, WAREHOUSE, MYSQL, 3306, protocol="tcp")
    assert (d.allowed, d.rules, d.detail) == (True, ("bookwarehouse/TrafficTarget/mysql",), "tcp")


def test_spec_v1alpha3_l7_example() -> None:
    prometheus, website = ident("default", "prometheus"), ident("default", "website-service")
    payments, api = ident("default", "payments-service"), ident("default", "api-service")
    check(
        scenario_index("spec_access_v1alpha3"),
        [
            # the TCPRoute rule (port 8080) allows any traffic there, HTTP included
            (prometheus, api, 8080, "POST", "/anything", None, True, "allow"),
            (website, api, 8080, "DELETE", "/admin", None, True, "allow"),
            # on other ports only the HTTP matches apply: union of two TrafficTargets
            (prometheus, api, 9090, "GET", "/metrics", None, True, "allow"),
            (prometheus, api, 9090, "GET", "/api/v1", None, False, "no-route-match"),
            (payments, api, 9090, "PATCH", "/api/v1", None, True, "allow"),
            # anchored at the start only: /api matches /apiary
            (website, api, 9090, "GET", "/apiary", None, True, "allow"),
            (website, api, 9090, "GET", "/metrics", None, False, "no-route-match"),
            (website, api, 9090, "GET", "/v2/api", None, False, "no-route-match"),
        ],
    )


def test_spec_v1alpha1_destination_port_restricts_every_rule() -> None:
    prometheus, service_a = ident("default", "prometheus"), ident("default", "service-a")
    check(
        scenario_index("spec_access_v1alpha1"),
        [
            (prometheus, service_a, 8080, "GET", "/metrics", None, True, "allow"),
            (prometheus, service_a, 9090, "GET", "/metrics", None, False, "port-not-allowed"),
            (prometheus, service_a, 8080, "GET", "/api", None, False, "no-route-match"),
        ],
    )


@pytest.mark.parametrize(
    ("protocol", "port", "allowed", "reason"),
    [
        ("tcp", 8300, True, "allow"),
        ("tcp", 8301, True, "allow"),
        ("udp", 8301, True, "allow"),
        ("udp", 8302, True, "allow"),
        ("udp", 8300, False, "protocol-not-allowed"),  # the spec's own example: UDP 8300 blocked
        ("tcp", 9000, False, "port-not-allowed"),
        ("udp", 9000, False, "port-not-allowed"),
    ],
)
def test_spec_l4_example_tcp_and_udp_are_separate(
    protocol: Any, port: int, allowed: bool, reason: str
) -> None:
    d = authorize(
        scenario_index("spec_l4"),
        ident("default", "client"),
        ident("default", "server"),
        port,
        protocol=protocol,
    )
    assert (d.allowed, d.reason) == (allowed, reason)


def test_udp_rule_allows_only_udp() -> None:
    index = index_of(
        [
            udp("dns", 53),
            target("dns", dest=sa("resolver"), sources=[sa("app")], rules=[udp_rule("dns")]),
        ]
    )
    app, resolver = ident("default", "app"), ident("default", "resolver")
    assert authorize(index, app, resolver, 53, protocol="udp").allowed
    http = authorize(index, app, resolver, 53, "GET", "/")
    assert (http.allowed, http.reason) == (False, "protocol-not-allowed")
    l4 = authorize(index, app, resolver, 53, protocol="tcp")
    assert (l4.allowed, l4.reason) == (False, "protocol-not-allowed")


def test_tcproute_with_empty_ports_allows_http_on_every_port() -> None:
    index = index_of(
        [
            tcp("all-ports"),
            target("any", dest=sa("db"), sources=[sa("app")], rules=[tcp_rule("all-ports")]),
        ]
    )
    app, db = ident("default", "app"), ident("default", "db")
    for port in (1, 80, 5432, 65535):
        assert authorize(index, app, db, port, "DELETE", "/x").allowed
        assert authorize(index, app, db, port, protocol="tcp").allowed
    assert not authorize(index, app, db, 80, protocol="udp").allowed
    assert not authorize(index, ident("default", "other"), db, 80, "GET", "/").allowed


def test_l4_connection_check_on_an_http_only_port_is_a_protocol_deny() -> None:
    index = scenario_index("bookstore")
    d = authorize(index, BOOKBUYER, BOOKSTORE, 14001, protocol="tcp")
    assert (d.allowed, d.reason) == (False, "protocol-not-allowed")


def headers_index() -> PolicyIndex:
    return index_of(
        [
            group(
                "clients",
                match("android", headers={"User-Agent": ".*Android.*", "Cookie": ".*insider.*"}),
                match("firefox", headers={"user-agent": ".*Firefox.*"}),
                match("counter", "/counter", ["GET"]),
                match("anything", methods=["*"], headers={"x-debug": "1"}),
                match("no-methods", "/open$", []),
                match("public", "/public/.*", ["GET"]),
            ),
            target("clients", dest=sa("web"), sources=[sa("app")], rules=[http_rule("clients")]),
        ]
    )


def test_header_names_are_every_header_a_destinations_matches_read() -> None:
    index = headers_index()
    assert index.header_names(ident("default", "web")) == {"user-agent", "cookie", "x-debug"}
    assert index.header_names(ident("default", "app")) == frozenset()  # no rules: reads none
    assert index.header_names("spiffe://cluster.local/ns/none/sa/none") == frozenset()


@pytest.mark.parametrize(
    ("method", "path", "headers", "allowed"),
    [
        # AND within a match: both Android headers are needed
        ("GET", "/", {"user-agent": "Mozilla (Android 14)", "cookie": "type=insider"}, True),
        ("GET", "/", {"user-agent": "Mozilla (Android 14)"}, False),
        ("GET", "/", {"cookie": "type=insider"}, False),
        # OR across matches: the Firefox match alone is enough
        ("POST", "/x", {"user-agent": "Mozilla Firefox/128"}, True),
        # header values match the whole value: ".*Firefox.*" needs to cover it all
        ("GET", "/", {"user-agent": "Firefox\n"}, False),
        ("GET", "/", {"x-debug": "1"}, True),
        ("GET", "/", {"x-debug": "10"}, False),
        # pathRegex anchored at the start only, query ignored
        ("GET", "/counter", {}, True),
        ("GET", "/counter/7", {}, True),
        ("GET", "/counter?reset=1", {}, True),
        ("GET", "/incrementcounter", {}, False),
        ("POST", "/counter", {}, False),
        # empty methods = any method
        ("PATCH", "/open", {}, True),
        ("PATCH", "/open?x", {}, True),
        ("PATCH", "/opened", {}, False),
        # dot segments cannot climb out of an allowed prefix
        ("GET", "/public/index.html", {}, True),
        ("GET", "/public/../admin", {}, False),
        ("GET", "/public/%2e%2e/admin", {}, False),
        ("GET", "/public//../admin", {}, False),
        ("GET", "/public/a/../b", {}, True),
    ],
)
def test_http_match_semantics(
    method: str, path: str, headers: Mapping[str, str], allowed: bool
) -> None:
    d = authorize(
        headers_index(), ident("default", "app"), ident("default", "web"), 80, method, path, headers
    )
    assert d.allowed is allowed, d
    assert d.reason == ("allow" if allowed else "no-route-match")


def union_resources(*, with_second: bool) -> list[Any]:
    resources: list[Any] = [
        group(
            "routes",
            match("read", "/items", ["GET"]),
            match("write", "/items", ["POST", "PUT"]),
        ),
        target(
            "readers",
            dest=sa("api"),
            sources=[sa("web"), sa("cli")],
            rules=[http_rule("routes", "read")],
        ),
    ]
    if with_second:
        resources.append(
            target(
                "writers", dest=sa("api"), sources=[sa("cli")], rules=[http_rule("routes", "write")]
            )
        )
    return resources


def test_several_traffic_targets_for_one_destination_are_a_union() -> None:
    index = index_of(union_resources(with_second=True))
    web, cli, api = ident("default", "web"), ident("default", "cli"), ident("default", "api")
    assert authorize(index, cli, api, 80, "GET", "/items").rules == (
        "default/TrafficTarget/readers",
    )
    assert authorize(index, cli, api, 80, "PUT", "/items").rules == (
        "default/TrafficTarget/writers",
    )
    denied = authorize(index, web, api, 80, "PUT", "/items")
    assert (denied.allowed, denied.reason) == (False, "no-route-match")
    assert denied.rules == ("default/TrafficTarget/readers",)


def test_deleted_traffic_target_no_longer_allows() -> None:
    cli, api = ident("default", "cli"), ident("default", "api")
    before = index_of(union_resources(with_second=True))
    assert authorize(before, cli, api, 80, "POST", "/items").allowed
    after = index_of(union_resources(with_second=False))
    d = authorize(after, cli, api, 80, "POST", "/items")
    assert (d.allowed, d.reason) == (False, "no-route-match")
    # and deleting the last one leaves the destination with no TrafficTarget at all
    gone = index_of(union_resources(with_second=False)[:1])
    assert authorize(gone, cli, api, 80, "GET", "/items").reason == "no-traffic-target"


def test_dangling_reference_never_allows_until_the_route_exists() -> None:
    tt = target("tt", dest=sa("api"), sources=[sa("web")], rules=[http_rule("later", "m")])
    web, api = ident("default", "web"), ident("default", "api")
    assert authorize(index_of([tt]), web, api, 80, "GET", "/").reason == "no-traffic-target"
    created = index_of([tt, group("later", match("m", "/", ["GET"]))])
    assert authorize(created, web, api, 80, "GET", "/").allowed


@pytest.mark.parametrize("scenario", ["dangling"])
def test_nothing_in_the_dangling_scenario_allows_more_than_its_valid_match(scenario: str) -> None:
    index = scenario_index(scenario)
    web, api = ident("default", "web"), ident("default", "api")
    assert authorize(index, web, api, 80, "GET", "/ok").allowed
    for method, path in [("GET", "/aa"), ("GET", "/x"), ("POST", "/ok"), ("GET", "/")]:
        assert not authorize(index, web, api, 80, method, path, {"cookie": "evil"}).allowed
    assert (
        authorize(
            index, ident("default", "api"), ident("default", "db"), 5432, protocol="tcp"
        ).reason
        == "no-traffic-target"
    )
    assert authorize(index, web, ident("prod", "api"), 80, "GET", "/ok").reason == (
        "no-traffic-target"
    )


def test_traffic_target_without_sources_or_rules_never_allows() -> None:
    resources = [
        group("routes", match("all", methods=["*"])),
        target("no-sources", dest=sa("api"), sources=[], rules=[http_rule("routes")]),
        target("no-rules", dest=sa("api"), sources=[sa("web")], rules=[]),
    ]
    d = authorize(
        index_of(resources), ident("default", "web"), ident("default", "api"), 80, "GET", "/"
    )
    assert (d.allowed, d.reason) == (False, "no-traffic-target")


def test_identity_binding_subjects() -> None:
    s = SCENARIOS["identity_binding"]()
    index = PolicyIndex.build(compile(s.resources).policy)
    prometheus, service_a = ident("default", "prometheus"), ident("default", "service-a")
    assert authorize(index, prometheus, service_a, 9090, "GET", "/metrics").allowed
    assert authorize(index, prometheus, service_a, 8080, "POST", "/").allowed
    assert not authorize(index, ident("default", "other"), service_a, 8080, "GET", "/").allowed
    # the federated identity named by the binding is not a destination of this mesh
    federated = "spiffe://federated.trustdomain/boundary/boundaryName/identifierType/identifier"
    assert authorize(index, prometheus, federated, 8080, "GET", "/").reason == "no-traffic-target"


def test_identity_binding_spiffe_identities_as_sources() -> None:
    index = index_of(
        [
            binding("partners", spiffe=["partner.example/ns/shop/sa/checkout"]),
            tcp("https", 443),
            target(
                "partners",
                dest=sa("payments"),
                sources=[binding_ref("partners")],
                rules=[tcp_rule("https")],
            ),
        ]
    )
    partner = "spiffe://partner.example/ns/shop/sa/checkout"
    assert authorize(index, partner, ident("default", "payments"), 443, protocol="tcp").allowed


def test_audit_mode_allows_but_records_the_would_be_deny() -> None:
    index = index_of(union_resources(with_second=False), mode="audit")
    web, api = ident("default", "web"), ident("default", "api")
    d = authorize(index, web, api, 80, "DELETE", "/items")
    assert (d.allowed, d.would_deny, d.mode, d.reason) == (True, True, "audit", "no-route-match")
    assert d.rules == ("default/TrafficTarget/readers",)
    ok = authorize(index, web, api, 80, "GET", "/items")
    assert (ok.allowed, ok.would_deny, ok.reason) == (True, False, "allow")
    stranger = authorize(index, ident("default", "x"), api, 80, "GET", "/items")
    assert (stranger.allowed, stranger.would_deny, stranger.reason) == (
        True,
        True,
        "source-not-allowed",
    )
    assert authorize(index, None, api, 80, "GET", "/").would_deny


def test_permissive_mode_allows_everything() -> None:
    index = index_of([], mode="permissive")
    for source in (None, ident("default", "anyone")):
        d = authorize(index, source, ident("default", "api"), 1, "GET", "/", protocol="http")
        assert (d.allowed, d.reason, d.would_deny) == (True, "permissive", False)


def test_hand_written_policy_with_a_non_re2_regex_fails_closed() -> None:
    policy = MeshPolicy(
        destinations={
            ident("default", "api"): (
                AuthzRule(
                    origin="default/TrafficTarget/x",
                    sources=(ident("default", "web"),),
                    http=(HttpMatch(origin="g#m", path_regex=r"/(a)\1"),),
                ),
            )
        }
    )
    index = PolicyIndex.build(policy)
    assert r"/(a)\1" in index.regex_errors
    d = authorize(index, ident("default", "web"), ident("default", "api"), 80, "GET", "/aa")
    assert (d.allowed, d.reason) == (False, "no-route-match")


def test_port_protocol_is_tcp_only_where_tcp_rules_alone_cover_the_port() -> None:
    index = scenario_index("spec_access_v1alpha3")
    api = ident("default", "api-service")
    # HTTP matches apply on every port (no destination.port), so 8080 stays HTTP
    assert index.port_protocol(api, 8080) == "http"
    mysql = scenario_index("bookstore")
    assert mysql.port_protocol(MYSQL, 3306) == "tcp"
    assert mysql.port_protocol(MYSQL, 3307) == "http"  # nothing covers it (the proxy detects)
    assert mysql.port_protocol(BOOKSTORE, 14001) == "http"
    assert mysql.port_protocol(ident("x", "y"), 1) == "http"
    l4 = scenario_index("spec_l4")
    assert l4.port_protocol(ident("default", "server"), 8300) == "tcp"


def test_port_covered_says_where_some_rule_names_the_port() -> None:
    """Where none does, the proxy detects the protocol (proxy.detect)."""
    mysql = scenario_index("bookstore")
    assert mysql.port_covered(MYSQL, 3306)  # a TCPRoute
    assert not mysql.port_covered(MYSQL, 3307)
    assert not mysql.port_covered(ident("x", "y"), 1)  # no TrafficTarget at all
    api = scenario_index("spec_access_v1alpha3")
    assert api.port_covered(ident("default", "api-service"), 8080)  # HTTP rules cover every port
