"""What the compiled MeshPolicy (and so the proxy) makes of two readings the loader allows:
a TCPRoute/UDPRoute v1alpha4 `spec` without `matches.ports` is every port, and a header
condition on `:authority` is one on `host`, the Host header a request carries."""

from __future__ import annotations

import pytest
from compiler_fixtures import group, http_rule, ident, match, sa, target

from smi.compiler.build import compile
from smi.compiler.ir import AuthzRule, HttpMatch, PolicyIndex, authorize
from smi.loading import load_text

WEB, API = ident("shop", "web"), ident("shop", "api")


def target_of(kind: str, name: str) -> str:
    return (
        "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\n"
        "metadata: {name: tt, namespace: shop}\nspec:\n"
        "  destination: {kind: ServiceAccount, name: api, namespace: shop}\n"
        f"  rules: [{{kind: {kind}, name: {name}}}]\n"
        "  sources: [{kind: ServiceAccount, name: web, namespace: shop}]\n"
    )


def compiled(text: str) -> tuple[dict[str, tuple[AuthzRule, ...]], PolicyIndex]:
    loaded = load_text(text, filename="t.yaml")
    assert [d for d in loaded.diagnostics if d.is_error] == []
    result = compile(loaded.resources)
    assert result.skipped == ()
    return result.policy.destinations, PolicyIndex.build(result.policy)


@pytest.mark.parametrize(
    "spec", ["spec: {}", "spec: {matches: {}}", "spec: {matches: {ports: []}}"]
)
@pytest.mark.parametrize("kind", ["TCPRoute", "UDPRoute"])
def test_a_route_without_ports_compiles_to_every_port(kind: str, spec: str) -> None:
    text = (
        f"apiVersion: specs.smi-spec.io/v1alpha4\nkind: {kind}\n"
        f"metadata: {{name: l4, namespace: shop}}\n{spec}\n---\n" + target_of(kind, "l4")
    )
    destinations, index = compiled(text)
    every = {"tcp_ports": (), "udp_ports": None} if kind == "TCPRoute" else {"udp_ports": ()}
    assert destinations == {
        API: (AuthzRule(origin="shop/TrafficTarget/tt", sources=(WEB,), **every),)
    }
    protocol = "tcp" if kind == "TCPRoute" else "udp"
    for port in (1, 8080, 65535):
        assert authorize(index, WEB, API, port, protocol=protocol).allowed, port


AUTHORITY_GROUP = """\
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: shop}
spec:
  matches:
  - name: api-host
    headers: [{":authority": "api\\\\.example\\\\.com(:[0-9]+)?"}]
---
"""


def test_authority_compiles_to_host_and_the_proxy_matches_the_host_header() -> None:
    destinations, index = compiled(AUTHORITY_GROUP + target_of("HTTPRouteGroup", "g"))
    http = HttpMatch(
        origin="shop/HTTPRouteGroup/g#api-host",
        headers=(("host", "api\\.example\\.com(:[0-9]+)?"),),
    )
    assert destinations == {
        API: (AuthzRule(origin="shop/TrafficTarget/tt", sources=(WEB,), http=(http,)),)
    }
    allowed = authorize(index, WEB, API, 80, "GET", "/", {"host": "api.example.com:80"})
    assert allowed.allowed
    other = authorize(index, WEB, API, 80, "GET", "/", {"host": "admin.example.com"})
    assert (other.allowed, other.reason) == (False, "no-route-match")
    # No request carries a `:authority` header line: it is not what the policy matches on.
    missing = authorize(index, WEB, API, 80, "GET", "/", {":authority": "api.example.com"})
    assert not missing.allowed


def test_a_hub_authority_from_elsewhere_is_compiled_as_host() -> None:
    """Hub values a lossy-fields annotation restores skip the converters' naming."""
    routes = group("g", match("api-host", headers={":authority": "a"}), ns="shop")
    tt = target("tt", ns="shop", dest=sa("api"), sources=[sa("web")], rules=[http_rule("g")])
    [rule] = compile([routes, tt]).policy.destinations[API]
    assert rule.http[0].headers == (("host", "a"),)
