"""The admin listener's bounds: it shares the proxy's process and file descriptors, so a
client of it must not be able to hold connections, time or memory without limit."""

from __future__ import annotations

import asyncio
import socket

from proxy_fakes import FakeTransport

from proxy.admin import MAX_QUEUED, AdminLimits, AdminProtocol

METRICS = b"m" * (1024 * 1024)
PAGES = {
    "/ready": lambda: (200, "text/plain", b"ready\n"),
    "/metrics": lambda: (200, "text/plain", METRICS),
}
GET = b"GET /ready HTTP/1.1\r\nHost: a\r\n\r\n"


def _open(limits: AdminLimits) -> tuple[AdminProtocol, FakeTransport]:
    proto, transport = AdminProtocol(PAGES, limits), FakeTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    return proto, transport


async def test_connections_over_the_limit_are_refused_until_one_closes() -> None:
    limits = AdminLimits(connections=2)
    (a, ta), (_, tb) = _open(limits), _open(limits)
    _, tc = _open(limits)
    assert not ta.closed and not tb.closed and tc.aborted and limits.open == 2
    a.connection_lost(None)
    _, td = _open(limits)
    assert not td.closed and limits.open == 2


async def test_a_connection_must_finish_a_request_in_time_even_a_byte_at_a_time() -> None:
    proto, t = _open(AdminLimits(idle=0.2))
    for byte in GET[:-1]:  # a slow client: every byte well inside the time, the request not
        proto.data_received(bytes([byte]))
        await asyncio.sleep(0.01)
        if t.closed:
            break
    assert t.aborted and t.take() == b""


async def test_an_answered_request_restarts_the_time_and_an_idle_connection_is_closed() -> None:
    proto, t = _open(AdminLimits(idle=0.15))
    for _ in range(3):
        await asyncio.sleep(0.1)
        proto.data_received(GET)
        assert t.take().startswith(b"HTTP/1.1 200 OK\r\n") and not t.closed
    await asyncio.sleep(0.25)
    assert t.aborted
    proto.connection_lost(None)
    assert proto.timer is None


async def test_pipelined_requests_from_a_client_that_reads_nothing_are_cut_off() -> None:
    proto, t = _open(AdminLimits())
    t.stalled = True
    proto.data_received(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n" * 64)
    queued = sum(map(len, t.writes))
    assert t.aborted and MAX_QUEUED < queued <= MAX_QUEUED + 2 * len(METRICS)


async def test_reading_pauses_while_the_client_is_not_reading() -> None:
    proto, t = _open(AdminLimits())
    proto.pause_writing()
    assert not t.reading
    proto.resume_writing()
    assert t.reading


async def test_over_the_limit_on_real_sockets() -> None:
    loop = asyncio.get_running_loop()
    limits = AdminLimits(connections=1)
    server = await loop.create_server(lambda: AdminProtocol(PAGES, limits), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    first = await asyncio.open_connection("127.0.0.1", port)
    try:
        first[1].write(GET)
        assert (await first[0].readuntil(b"ready\n")).startswith(b"HTTP/1.1 200 OK")
        second = socket.create_connection(("127.0.0.1", port), timeout=2)
        second.setblocking(False)
        try:
            got = await asyncio.wait_for(loop.sock_recv(second, 100), 2)
        except ConnectionResetError:
            got = b""
        assert got == b""  # refused without an answer
        second.close()
        first[1].write(GET)  # the counted one still works
        assert (await first[0].readuntil(b"ready\n")).startswith(b"HTTP/1.1 200 OK")
    finally:
        first[1].close()
        server.close()
        await server.wait_closed()
