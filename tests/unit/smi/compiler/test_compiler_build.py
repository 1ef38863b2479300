"""Compiler behaviours the golden scenarios do not spell out one by one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from compiler_fixtures import (
    binding,
    binding_ref,
    group,
    http_rule,
    ident,
    match,
    meta,
    sa,
    service,
    split,
    target,
    tcp,
    tcp_rule,
    udp,
    udp_rule,
)

import smi.compiler
from smi.compiler.build import compile
from smi.compiler.ir import AuthzRule, Endpoint, HttpMatch, Service, Split, SplitBackend
from smi.compiler.splits import root_service
from smi.errors import Diagnostic


@dataclass(frozen=True)
class Source:
    file: str
    line: int


@dataclass(frozen=True)
class Wrapped:
    """Shaped like `smi.loading.Resource`: the hub object in `.obj`, where it came from."""

    obj: Any
    source: Source


@dataclass(frozen=True)
class Ctx:
    """Shaped like `smi.loading.ContextObject`: the manifest in `.raw`."""

    raw: dict[str, Any]


def test_the_package_exposes_compile_lazily() -> None:
    assert smi.compiler.compile is compile


def test_wrapped_resources_compile_and_locate_their_diagnostics() -> None:
    tt = target("tt", dest=sa("api"), sources=[sa("web")], rules=[http_rule("missing")])
    result = compile([Wrapped(tt, Source("targets.yaml", 12))])
    assert result.policy.destinations == {}
    assert [d.format() for d in result.skipped] == [
        "targets.yaml:12: warning: no rule resolved: it allows nothing and is left out (SMI6004)",
        "targets.yaml:12: warning: spec.rules[0]: HTTPRouteGroup default/missing not found: "
        "rule skipped (SMI6001)",
    ]


def test_located_diagnostics_use_the_resources_own_locator() -> None:
    @dataclass(frozen=True)
    class Located(Wrapped):
        def locate(self, d: Diagnostic) -> Diagnostic:
            return d.located(file=self.source.file, line=40 if d.path else self.source.line)

    tt = target("tt", dest=sa("api"), sources=[sa("web")], rules=[http_rule("missing")])
    lines = [(d.path, d.line) for d in compile([Located(tt, Source("t.yaml", 3))]).skipped]
    assert lines == [("", 3), ("spec.rules[0]", 40)]


def test_conflicting_duplicates_are_reported_and_resolved_by_content() -> None:
    a = group("routes", match("m", "/a", ["GET"]))
    b = group("routes", match("m", "/b", ["GET"]))
    tt = target("tt", dest=sa("api"), sources=[sa("web")], rules=[http_rule("routes")])
    first, second = compile([a, b, tt]), compile([b, tt, a])
    assert first.policy == second.policy
    assert first.policy.destinations[ident("default", "api")][0].http[0].path_regex == "/a"
    assert [(d.code, d.object_ref) for d in first.skipped] == [
        ("SMI6005", "default/HTTPRouteGroup/routes")
    ]
    assert compile([a, a, tt]).skipped == ()


def test_objects_without_a_namespace_live_in_default() -> None:
    tt = target("tt", dest=sa("api"), sources=[sa("web")], rules=[tcp_rule("all")])
    bare = tt.model_copy(update={"metadata": meta("tt", "")})
    route = tcp("all").model_copy(update={"metadata": meta("all", "")})
    (rule,) = compile([bare, route]).policy.destinations[ident("default", "api")]
    assert rule.origin == "default/TrafficTarget/tt"
    assert rule.sources == (ident("default", "web"),)


def test_sources_default_to_the_traffic_target_namespace_not_the_destinations() -> None:
    tt = target("tt", ns="shop", dest=sa("api"), sources=[sa("web"), sa("cron", "batch")],
                rules=[tcp_rule("all")])  # fmt: skip
    (rule,) = compile([tt, tcp("all", ns="shop")]).policy.destinations[ident("shop", "api")]
    assert rule.sources == (ident("batch", "cron"), ident("shop", "web"))


def test_http_matches_are_normalised() -> None:
    g = group(
        "g",
        match("star", "/s", ["GET", "*"]),
        match("dups", "/d", ["POST", "GET", "POST"]),
        match("hdrs", headers={"X-B": "2", "x-a": "1"}),
    )
    tt = target("tt", dest=sa("api"), sources=[sa("web")],
                rules=[http_rule("g"), http_rule("g", "star")])  # fmt: skip
    (rule,) = compile([g, tt]).policy.destinations[ident("default", "api")]
    assert rule.http == (
        HttpMatch(origin="default/HTTPRouteGroup/g#dups", methods=("GET", "POST"), path_regex="/d"),
        HttpMatch(origin="default/HTTPRouteGroup/g#hdrs", headers=(("x-a", "1"), ("x-b", "2"))),
        HttpMatch(origin="default/HTTPRouteGroup/g#star", methods=(), path_regex="/s"),
    )


def test_l4_rules_union_their_ports_and_empty_means_all() -> None:
    resources = [
        tcp("web", 80, 443),
        tcp("admin", 8443),
        udp("dns", 53),
        target(
            "some",
            dest=sa("api"),
            sources=[sa("a")],
            rules=[tcp_rule("web"), tcp_rule("admin"), udp_rule("dns")],
        ),
        tcp("everything"),
        target(
            "all",
            dest=sa("api"),
            sources=[sa("b")],
            rules=[tcp_rule("web"), tcp_rule("everything")],
        ),
    ]
    every, some = compile(resources).policy.destinations[ident("default", "api")]
    assert (every.origin, every.tcp_ports, every.udp_ports) == (
        "default/TrafficTarget/all",
        (),
        None,
    )
    assert (some.tcp_ports, some.udp_ports, some.http) == ((80, 443, 8443), (53,), ())


def test_destination_port_becomes_the_rules_port_restriction() -> None:
    tt = target("tt", dest=sa("api", port=8080), sources=[sa("web")], rules=[tcp_rule("all")])
    (rule,) = compile([tt, tcp("all")]).policy.destinations[ident("default", "api")]
    assert rule == AuthzRule(
        origin="default/TrafficTarget/tt",
        sources=(ident("default", "web"),),
        tcp_ports=(),
        ports=(8080,),
    )


def test_trust_domain_shapes_every_identity() -> None:
    tt = target("tt", dest=sa("api"), sources=[sa("web")], rules=[tcp_rule("all")])
    policy = compile([tt, tcp("all")], trust_domain="prod.example").policy
    assert list(policy.destinations) == ["spiffe://prod.example/ns/default/sa/api"]
    assert policy.destinations["spiffe://prod.example/ns/default/sa/api"][0].sources == (
        "spiffe://prod.example/ns/default/sa/web",
    )
    assert policy.trust_domain == "prod.example"


def test_identity_binding_destination_outside_the_namespace_is_refused() -> None:
    resources = [
        binding(
            "sneaky", spiffe=["cluster.local/ns/payments/sa/ledger"], service_account="frontend"
        ),
        tcp("all"),
        target("tt", dest=binding_ref("sneaky"), sources=[sa("web")], rules=[tcp_rule("all")]),
    ]
    result = compile(resources)
    assert list(result.policy.destinations) == [ident("default", "frontend")]
    assert any(
        d.code == "SMI6006" and "spiffe://cluster.local/ns/payments/sa/ledger" in d.message
        for d in result.skipped
    )


def test_unknown_mode_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="mode 'strict'"):
        compile([], mode="strict")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("service_name", "root"),
    [
        ("web", "web"),
        ("web.shop", "web"),
        ("web.shop.svc", "web"),
        ("web.shop.svc.cluster.local", "web"),
        ("web.other", None),
        ("web.shop.svc.cluster", None),
        ("web.shop.example.com", None),
        ("web.", None),
        (".shop", None),
    ],
)
def test_split_root_forms(service_name: str, root: str | None) -> None:
    assert root_service(service_name, "shop") == root


def test_services_come_from_context_and_endpoints() -> None:
    eps = {
        "default/web-v2": [
            Endpoint("10.0.0.9", 8080, ident("default", "web")),
            Endpoint("10.0.0.2", 8080, ident("default", "web")),
        ]
    }
    context = [
        Ctx(service("web", 80)),
        service("web-v1", 80, 8080),
        {"kind": "Deployment", "metadata": {"name": "web"}},
        {"kind": "Service", "metadata": {"name": "odd"}, "spec": {"ports": [{"port": "x"}, 7]}},
    ]
    s = split("canary", "web", {"web-v1": 3, "web-v2": 1, "web-v3": 1})
    result = compile([s], context=context, endpoints=eps)
    assert result.policy.services == {
        "default/odd": Service(),
        "default/web": Service(ports=(80,)),
        "default/web-v1": Service(ports=(80, 8080)),
        "default/web-v2": Service(
            endpoints=(
                Endpoint("10.0.0.2", 8080, ident("default", "web")),
                Endpoint("10.0.0.9", 8080, ident("default", "web")),
            )
        ),
    }
    # web-v2 exists through its registered endpoints; web-v3 does not exist at all
    assert result.policy.splits["default/web"] == Split(
        origin="default/TrafficSplit/canary",
        backends=(SplitBackend("default/web-v1", 3000), SplitBackend("default/web-v2", 1000)),
    )
    assert [d.path for d in result.skipped] == ["spec.backends[2].service"]


def test_split_left_without_positive_weight_is_dropped() -> None:
    s = split("rollout", "web", {"web-v1": 0, "web-v2": 5})
    result = compile([s], context=[service("web-v1", 80)])
    assert result.policy.splits == {}
    assert [d.message for d in result.skipped] == [
        "no backend with a positive weight resolved: split skipped",
        "backend Service default/web-v2 not found: skipped",
    ]


def test_split_compiles_as_written_when_the_set_knows_no_services_of_its_namespace() -> None:
    """A CI run on SMI manifests alone: nothing says the backends are missing, so the split
    is kept; a Service of another namespace does not change that."""
    s = split("canary", "web", {"web-v1": 9, "web-v2": 1})
    result = compile([s], context=[service("api", 80, ns="other")])
    assert result.policy.splits["default/web"].backends == (
        SplitBackend("default/web-v1", 9000),
        SplitBackend("default/web-v2", 1000),
    )
    assert result.skipped == ()


def test_a_backend_with_none_of_the_root_ports_gets_no_traffic() -> None:
    """SPEC: a backend lacking the root's port is excluded from the split for that port; one
    lacking all of them is excluded from the split. One lacking only some stays (per-port
    routing is not in the MeshPolicy; validation warns, SMI3005)."""
    s = split("canary", "web", {"web-v1": 1, "web-v2": 1, "web-v3": 1, "web-v4": 1})
    context = [
        service("web", 80, 9090),
        service("web-v1", 80, 9090),
        service("web-v2", 8080),  # none of 80, 9090
        service("web-v3", 9090),  # one of them: kept
        {"kind": "Service", "metadata": {"name": "web-v4"}, "spec": {}},  # ports unknown: kept
    ]
    result = compile([s], context=context)
    assert [b.service for b in result.policy.splits["default/web"].backends] == [
        "default/web-v1",
        "default/web-v3",
        "default/web-v4",
    ]
    assert [(d.path, d.message) for d in result.skipped] == [
        (
            "spec.backends[1].service",
            "backend Service default/web-v2 has none of the ports of root service default/web "
            "[80, 9090]: it gets no traffic, skipped",
        )
    ]
    only = split("move", "web", {"web-v2": 1})
    assert compile([only], context=context).policy.splits == {}  # nothing left: no split
