"""L4 relays against real sockets on 127.0.0.1: a denied caller never reaches the app, an
allowed one's bytes all arrive — also when it closes before the app connection is up."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from proxy_fakes import FakeTransport

from proxy import tcp
from proxy.metrics import Metrics
from proxy.policy import PolicyHolder
from proxy.routing import InboundRouter, PeerIdentities
from proxy.state import ServerState
from proxy.tcp import InboundTcp
from proxy.upstream import Target
from smi.compiler.ir import AuthzRule, MeshPolicy
from smi.compiler.ir.index import PolicyIndex

DB = "spiffe://cluster.local/ns/shop/sa/db"
WEB = "spiffe://cluster.local/ns/shop/sa/web"


class _Fixed(PeerIdentities):
    def __init__(self, spiffe: str) -> None:
        super().__init__(trust_domain=None)
        self.spiffe = spiffe

    def of(self, transport: object) -> str:
        return self.spiffe


class _App:
    """A TCP server on 127.0.0.1 that records each connection's bytes until EOF."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.connections = 0
        self.done = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.received.append(await reader.read())
        writer.close()
        self.done.set()


def _router(app_port: int, *, caller: str) -> InboundRouter:
    metrics = Metrics()
    holder = PolicyHolder(metrics)
    rule = AuthzRule(origin="shop/TrafficTarget/db", sources=(WEB,), tcp_ports=(5432,))
    holder.index = PolicyIndex.build(MeshPolicy(destinations={DB: (rule,)}))
    return InboundRouter(
        identity=DB,
        app=Target("127.0.0.1", app_port),
        app_port=5432,
        policy=holder,
        metrics=metrics,
        peers=_Fixed(caller),
    )


async def _relay(app_port: int, caller: str = WEB) -> tuple[InboundTcp, FakeTransport, ServerState]:
    state = ServerState()
    relay = InboundTcp(router=_router(app_port, caller=caller), state=state, timeout=1.0)
    downstream = FakeTransport()
    relay.connection_made(downstream)  # type: ignore[arg-type]
    return relay, downstream, state


async def test_bytes_sent_before_a_clean_close_reach_the_app_even_mid_connect() -> None:
    """The caller writes and closes while the relay is still connecting to the app: its bytes
    were dropped (the relay saw its side gone and closed the fresh app connection empty)."""
    app = _App()
    server = await asyncio.start_server(app.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    relay, _, state = await _relay(port)
    relay.data_received(b"INSERT 1;")
    relay.data_received(b"COMMIT;")
    assert relay.eof_received() is True  # not linked yet: it stays half-open for an answer
    relay.connection_lost(None)
    await asyncio.wait_for(app.done.wait(), 2)
    assert app.received == [b"INSERT 1;COMMIT;"]
    await state.stop()
    server.close()


async def test_bytes_of_a_caller_that_broke_off_mid_connect_are_not_sent() -> None:
    app = _App()
    server = await asyncio.start_server(app.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    relay, _, state = await _relay(port)
    relay.data_received(b"half a request")
    relay.connection_lost(ConnectionResetError())
    await asyncio.wait_for(app.done.wait(), 2)
    assert app.received == [b""]
    await state.stop()
    server.close()


async def test_a_denied_caller_never_opens_a_connection_to_the_app() -> None:
    app = _App()
    server = await asyncio.start_server(app.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    relay, downstream, state = await _relay(port, caller="spiffe://cluster.local/ns/shop/sa/x")
    assert downstream.closed and not state.tasks
    relay.data_received(b"early data")  # what the loop may still hand over after close()
    relay.eof_received()
    relay.connection_lost(None)
    await asyncio.sleep(0.05)
    assert app.connections == 0 and downstream.writes == []
    server.close()


async def test_an_app_that_refuses_the_connection_closes_the_caller() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    relay, downstream, state = await _relay(port)
    relay.data_received(b"hello")
    await asyncio.wait_for(asyncio.gather(*state.tasks), 2)
    assert downstream.closed and downstream.writes == []
    assert relay.router.stats.errors.get("connect") == 1


async def test_a_connection_to_the_app_that_times_out_says_so_in_the_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: asyncio.timeout's TimeoutError prints as nothing: "cannot connect to ...: ".
    async def never(*args: object) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(tcp, "dial", never)
    state = ServerState()
    relay = InboundTcp(router=_router(5432, caller=WEB), state=state, timeout=0.05)
    downstream = FakeTransport()
    relay.connection_made(downstream)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="smictl.proxy"):
        relay.data_received(b"hello")
        await asyncio.wait_for(asyncio.gather(*state.tasks), 2)
    assert downstream.closed
    assert [r.getMessage() for r in caplog.records] == [
        "tcp: cannot connect to 127.0.0.1:5432: no connection within 0.05s"
    ]
