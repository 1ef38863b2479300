"""Real proxies on 127.0.0.1: a half-close crosses the mesh. The caller sends, ends its side
(`shutdown(SHUT_WR)`, as `nc -N` or a client that marks the end of its request with EOF does),
and still gets what comes after that, then the end.

L4: web-v1's outbound TCP listener → mTLS → db's inbound → the TCP echo app, which answers once
more when its caller's side ends. HTTP: a client with front's certificate straight to web-v1's
inbound listener, which ends its side (close_notify) after its request."""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvloop
from proxy_mesh import FRONT, Mesh

from proxy import tlslayer

pytestmark = pytest.mark.integration


def _read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_half_close_crosses_the_mtls_hop_and_the_answer_after_it_comes_back(
    mesh: Mesh,
) -> None:
    port = mesh.procs["web-v1"].ports["outbound_tcp"]["shop/db"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"ping")
        assert sock.recv(100) == b"tcp-echo:ping"
        sock.shutdown(socket.SHUT_WR)
        assert _read_to_end(sock) == b"tcp-echo:eof"


def test_a_half_close_straight_after_the_request_loses_nothing(mesh: Mesh) -> None:
    """The end follows the bytes at once (one segment apart): the relay is still connecting
    upstream when it comes."""
    port = mesh.procs["web-v1"].ports["outbound_tcp"]["shop/db"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"ping")
        sock.shutdown(socket.SHUT_WR)
        assert _read_to_end(sock) == b"tcp-echo:pingtcp-echo:eof"


def test_an_http_client_that_half_closes_over_mtls_still_gets_its_response(mesh: Mesh) -> None:
    got = bytearray()

    class Client(asyncio.Protocol):
        def __init__(self) -> None:
            self.done = asyncio.get_running_loop().create_future()

        def data_received(self, data: bytes) -> None:
            got.extend(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self.done.set_result(None)

    async def run() -> None:
        client = Client()
        port, ctx = mesh.inbound("web-v1"), mesh.pki.client(FRONT)
        transport, _ = await tlslayer.connect(lambda: client, "127.0.0.1", port, ctx)
        transport.write(b"GET /api/half HTTP/1.1\r\nHost: web\r\n\r\n")
        transport.write_eof()
        await asyncio.wait_for(client.done, 5)

    uvloop.run(run())
    assert got.startswith(b"HTTP/1.1 200 "), bytes(got[:200])
    assert b"/api/half" in got
