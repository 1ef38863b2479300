"""A port that HTTP rules cover for one caller is HTTP for every caller. It was relayed as bytes
for a caller whose rules there were only TCPRoutes, so that caller's own
`x-smi-source-identity` reached the app as sent: a forged identity on a port the app reads as
HTTP. Its TCPRoute now allows any HTTP request, and the proxy states who sent it."""

from __future__ import annotations

from proxy_fakes import Harness

from proxy.metrics import Metrics
from proxy.policy import PolicyHolder
from proxy.routing import InboundRouter, PeerIdentities
from proxy.upstream import Target
from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy
from smi.compiler.ir.index import PolicyIndex
from smi.identity import Identity

WEB = Identity("shop", "web").spiffe_id
CLIENT = Identity("shop", "client").spiffe_id
OTHER = Identity("shop", "other").spiffe_id


class _Fixed(PeerIdentities):
    def __init__(self, spiffe: str) -> None:
        super().__init__(trust_domain=None)
        self.spiffe = spiffe

    def of(self, transport: object) -> str:
        return self.spiffe


def _router(caller: str, *, tcp_ports: tuple[int, ...] = ()) -> InboundRouter:
    admin = HttpMatch(origin="shop/HTTPRouteGroup/admin-only#all", path_regex="/.*")
    http = AuthzRule(origin="shop/TrafficTarget/admin-to-web", sources=(CLIENT,), http=(admin,))
    l4 = AuthzRule(origin="shop/TrafficTarget/other-l4", sources=(OTHER,), tcp_ports=tcp_ports)
    policy = MeshPolicy(destinations={WEB: (http, l4)})
    metrics = Metrics()
    holder = PolicyHolder(metrics)
    holder.index = PolicyIndex.build(policy)
    return InboundRouter(
        identity=WEB,
        app=Target("127.0.0.1", 8080),
        app_port=8080,
        policy=holder,
        metrics=metrics,
        peers=_Fixed(caller),
    )


def test_a_port_http_for_some_caller_is_http_for_a_tcp_only_caller() -> None:
    assert _router(OTHER).protocol_for(OTHER) == "http"
    assert _router(OTHER, tcp_ports=(8080,)).protocol_for(OTHER) == "http"


def test_a_port_only_tcp_routes_cover_is_still_relayed() -> None:
    only_tcp = _router(OTHER)
    l4 = AuthzRule(origin="shop/TrafficTarget/l4", sources=(OTHER,), tcp_ports=())
    only_tcp.policy.index = PolicyIndex.build(MeshPolicy(destinations={WEB: (l4,)}))
    assert only_tcp.protocol_for(OTHER) == "tcp"
    assert only_tcp.protocol_for(CLIENT) == "tcp"  # a denied caller's connection is closed


async def test_the_tcp_only_caller_forging_the_identity_header_is_stated_as_itself() -> None:
    h = Harness(router=_router(OTHER))
    h.send(
        b"GET /admin HTTP/1.1\r\nHost: web\r\n"
        b"x-smi-source-identity: spiffe://cluster.local/ns/shop/sa/client\r\n\r\n"
    )
    await h.settle()
    sent = h.up().data
    assert b"sa/client" not in sent
    assert b"x-smi-source-identity: " + OTHER.encode() + b"\r\n" in sent
