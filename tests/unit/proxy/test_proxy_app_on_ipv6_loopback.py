"""An app that listens on ::1 alone (Node.js 17+ binding `localhost`) behind the default
`--app-host` 127.0.0.1: the proxy dials ::1 when 127.0.0.1 refuses, for HTTP and for TCP
ports. Real sockets; 127.0.0.1 at the app's port is held bound and not listening, so that it
refuses for certain."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from test_proxy_tcp_edge_cases import WEB, _App, _relay

from proxy.state import ServerState
from proxy.upstream import ConnectFailed, ConnectionPool, Target, loopback_alternate


def _v6_port() -> int:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def refusing_v4() -> Iterator[int]:
    """A port where 127.0.0.1 refuses (bound, never listening) and ::1 is free."""
    for _ in range(50):
        port = _v6_port()
        v4 = socket.socket()
        try:
            v4.bind(("127.0.0.1", port))
        except OSError:
            v4.close()
            continue
        with v4:
            yield port
        return
    pytest.skip("no port free on both 127.0.0.1 and ::1")


@contextlib.asynccontextmanager
async def v6_app(port: int) -> AsyncIterator[_App]:
    """An app listening at [::1]:port only."""
    app = _App()
    try:
        server = await asyncio.start_server(app.handle, "::1", port)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        yield app
    finally:
        server.close()


async def test_an_http_connection_to_the_app_falls_back_to_ipv6_loopback(
    refusing_v4: int,
) -> None:
    state = ServerState()
    pool = ConnectionPool(state=state)
    async with v6_app(refusing_v4) as app:
        conn = await pool.connect(Target("127.0.0.1", refusing_v4))
        # The refusal handled on the way is not left as the current exception (compiled, an
        # await in its handler did that, and the next httptools callback error chained it).
        assert sys.exc_info() == (None, None, None)
        assert conn.transport is not None
        assert conn.transport.get_extra_info("peername")[0] == "::1"
        conn.transport.write(b"GET / HTTP/1.1\r\n\r\n")
        conn.transport.write_eof()
        await asyncio.wait_for(app.done.wait(), 2)
        assert app.received == [b"GET / HTTP/1.1\r\n\r\n"]
        conn.close()
    await state.stop()


async def test_a_tcp_port_relays_to_an_app_on_ipv6_loopback(refusing_v4: int) -> None:
    async with v6_app(refusing_v4) as app:
        relay, _, state = await _relay(refusing_v4, caller=WEB)
        relay.data_received(b"SELECT 1;")
        await asyncio.wait_for(asyncio.gather(*state.tasks), 2)
        relay.eof_received()
        await asyncio.wait_for(app.done.wait(), 2)
        assert app.received == [b"SELECT 1;"] and not relay.router.stats.errors
        relay.connection_lost(None)
        await state.stop()


async def test_an_app_down_on_both_is_refused_naming_the_address_asked(refusing_v4: int) -> None:
    state = ServerState()
    pool = ConnectionPool(state=state)
    with pytest.raises(ConnectFailed, match=rf"cannot connect to 127\.0\.0\.1:{refusing_v4}: "):
        await pool.connect(Target("127.0.0.1", refusing_v4))
    await state.stop()


def test_only_the_plain_app_at_127_0_0_1_has_an_alternate() -> None:
    assert loopback_alternate(Target("127.0.0.1", 80)) == "::1"
    assert loopback_alternate(Target("::1", 80)) is None
    assert loopback_alternate(Target("10.0.0.7", 80)) is None
    peer = Target("127.0.0.1", 80, tls=_Tls(), identity=WEB)  # a peer proxy: mTLS
    assert loopback_alternate(peer) is None


class _Tls:
    client_context = ssl.create_default_context()
