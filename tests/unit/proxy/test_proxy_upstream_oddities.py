"""Responses an app (or a peer proxy) should not send, found by a differential fuzzer: each is
refused with a 502 and its connection closed, never relayed in a form the client would read
otherwise, never buffered past the head limit, never a traceback."""

from __future__ import annotations

import pytest
from proxy_fakes import Harness

from proxy.upstream import MAX_RESPONSE_HEAD

GET = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
UPGRADE = b"GET / HTTP/1.1\r\nHost: web\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"


@pytest.mark.parametrize("before", [b"", b"\r\n", b"\r\n\r\n", b"\n\n\n"])
async def test_a_head_that_never_ends_is_cut_at_the_limit_whatever_precedes_it(
    before: bytes,
) -> None:
    h = Harness()
    h.send(GET)
    await h.settle()
    h.respond(before + b"HTTP/1.1 200 OK\r\n")
    line = b"X-A: " + b"a" * 1000 + b"\r\n"
    for _ in range(MAX_RESPONSE_HEAD // len(line) + 5):
        if h.up().closed:
            break
        h.respond(line)
    assert h.up().closed
    assert h.down.take().startswith(b"HTTP/1.1 502 ")


async def test_a_101_without_upgrade_is_refused() -> None:
    h = Harness()
    h.send(UPGRADE)
    await h.settle()
    h.respond(b"HTTP/1.1 101 Switching Protocols\r\nX-Tail: 1\r\n\r\nok")
    assert h.up().closed
    out = h.down.take()
    assert out.startswith(b"HTTP/1.1 502 ")
    assert b"101" not in out


@pytest.mark.parametrize("value", [b"chunked\t", b"chunked\t ", b"chunked \t", b"Chunked\t"])
async def test_chunked_then_a_tab_is_refused_as_httptools_reads_no_chunks_there(
    value: bytes,
) -> None:
    h = Harness()
    h.send(GET)
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + value + b"\r\n\r\n1\r\nZ\r\n0\r\n\r\n")
    assert h.up().closed
    out = h.down.take()
    assert out.startswith(b"HTTP/1.1 502 ")
    assert b"Z" not in out


async def test_chunked_with_trailing_spaces_is_still_chunked() -> None:
    h = Harness()
    h.send(GET)
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked  \r\n\r\n1\r\nZ\r\n0\r\n\r\n")
    out = h.down.take()
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.endswith(b"\r\n\r\n1\r\nZ\r\n0\r\n\r\n")


@pytest.mark.parametrize("status", [b"HTTP/1.1 200", b"HTTP/1.1 200 ", b"HTTP/1.0 200"])
async def test_a_status_line_without_a_reason_phrase_is_relayed(status: bytes) -> None:
    """httptools takes `HTTP/1.1 200` (RFC 9112 §4: a client SHOULD ignore the reason); the
    compiled fast path sliced its absent reason as data[13:12], a negative size to mypyc's
    bytes slice (SystemError), and the client got a 502."""
    h = Harness()
    h.send(GET)
    await h.settle()
    h.respond(status + b"\r\nContent-Length: 2\r\n\r\nok")
    out = h.down.take()
    assert out.startswith(b"HTTP/1.1 200"), out
    assert out.endswith(b"\r\n\r\nok")
    assert h.up().closed is status.startswith(b"HTTP/1.0")  # (1.0: not kept alive)
