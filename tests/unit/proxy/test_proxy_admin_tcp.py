"""The admin pages and the L4 relay, driven with fake transports."""

from __future__ import annotations

from proxy_fakes import FakeTransport

from proxy.admin import AdminProtocol, json_page
from proxy.metrics import Metrics
from proxy.policy import PolicyHolder
from proxy.routing import InboundRouter, PeerIdentities
from proxy.state import ServerState
from proxy.tcp import InboundTcp, Pipe
from proxy.upstream import Target
from smi.compiler.ir import AuthzRule, MeshPolicy
from smi.compiler.ir.index import PolicyIndex

DB = "spiffe://cluster.local/ns/shop/sa/db"
WEB = "spiffe://cluster.local/ns/shop/sa/web"


def _admin() -> tuple[AdminProtocol, FakeTransport]:  # (in a running loop: it sets a timer)
    pages = {
        "/ready": lambda: (503, "text/plain", b"not ready: policy\n"),
        "/config": lambda: json_page(200, {"policy": {"revision": 4}}),
    }
    proto, transport = AdminProtocol(pages), FakeTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    return proto, transport


async def test_admin_pages_keep_alive_and_reject_the_rest() -> None:
    proto, t = _admin()
    proto.data_received(
        b"GET /ready HTTP/1.1\r\nHost: a\r\n\r\nGET /config?x HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    out = t.take()
    assert out.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"not ready: policy\n" in out
    assert out.endswith(b'{\n  "policy": {\n    "revision": 4\n  }\n}\n')
    proto.data_received(b"POST /ready HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    refused = t.take()  # (RFC 9110 §15.5.6: a 405 MUST carry Allow)
    assert refused.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert b"\r\nallow: GET, HEAD\r\n" in refused
    proto.data_received(b"GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert t.take().startswith(b"HTTP/1.1 404 ") and t.closed


async def test_admin_head_has_no_body() -> None:
    proto, t = _admin()
    proto.data_received(b"HEAD /config HTTP/1.1\r\nHost: a\r\n\r\n")
    head = t.take()
    assert head.endswith(b"\r\n\r\n") and b"content-length: 40\r\n" in head


async def test_admin_malformed_request_is_closed() -> None:
    proto, t = _admin()
    proto.data_received(b"\x00\x01garbage\r\n\r\n")
    assert t.take().startswith(b"HTTP/1.1 400 ") and t.closed


def test_pipe_relays_both_ways_with_backpressure_and_half_close() -> None:
    a, b = Pipe(), Pipe()
    ta, tb = FakeTransport(), FakeTransport()
    a.connection_made(ta)  # type: ignore[arg-type]
    a.data_received(b"early")
    assert not ta.reading  # nowhere to send it yet
    b.connection_made(tb)  # type: ignore[arg-type]
    a.link(b)
    assert tb.take() == b"early" and ta.reading
    b.data_received(b"reply")
    assert ta.take() == b"reply"
    b.pause_writing()
    assert not ta.reading
    b.resume_writing()
    assert ta.reading
    assert a.eof_received() is True and tb.eof_written
    b.connection_lost(None)
    assert ta.closed


def _tcp_router(sources: tuple[str, ...]) -> InboundRouter:
    metrics = Metrics()
    holder = PolicyHolder(metrics)
    holder.index = PolicyIndex.build(
        MeshPolicy(
            destinations={
                DB: (AuthzRule(origin="shop/TrafficTarget/db", sources=sources, tcp_ports=(5432,)),)
            }
        )
    )
    return InboundRouter(
        identity=DB,
        app=Target("127.0.0.1", 5432),
        app_port=5432,
        policy=holder,
        metrics=metrics,
        peers=_Fixed(WEB),
    )


class _Fixed(PeerIdentities):
    def __init__(self, spiffe: str) -> None:
        super().__init__(trust_domain=None)
        self.spiffe = spiffe

    def of(self, transport: object) -> str:
        return self.spiffe


async def test_inbound_tcp_denied_at_connect_is_closed_before_any_byte() -> None:
    router = _tcp_router(sources=("spiffe://cluster.local/ns/shop/sa/other",))
    state = ServerState()
    relay, t = InboundTcp(router=router, state=state, timeout=1.0), FakeTransport()
    relay.connection_made(t)  # type: ignore[arg-type]
    assert t.closed and not state.tasks
    assert router.metrics.authz_deny["tcp"] == {"source-not-allowed": 1}


async def test_inbound_tcp_allowed_connects_to_the_app() -> None:
    router = _tcp_router(sources=(WEB,))
    state = ServerState()
    relay, t = InboundTcp(router=router, state=state, timeout=1.0), FakeTransport()
    relay.connection_made(t)  # type: ignore[arg-type]
    assert not t.closed and not t.reading and len(state.tasks) == 1
    assert router.metrics.authz_allow["tcp"] == {"shop/TrafficTarget/db": 1}
    await state.stop()
