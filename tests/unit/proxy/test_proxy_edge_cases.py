"""Unusual and hostile HTTP/1.1 traffic, driven with byte literals and fake transports: nothing
may reach the app (or a client) that it could frame differently from the proxy."""

from __future__ import annotations

from typing import Any

import pytest
from proxy_fakes import APP, FakeRouter, Harness

from proxy.exchange import Exchange, Forward, Limits
from proxy.http1 import Reply
from proxy.upstream import Target

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
IDENTITY = b"x-smi-source-identity: spiffe://td/ns/a/sa/b\r\n"


async def test_connection_cannot_remove_content_length_or_host_from_a_request() -> None:
    # Dropping Content-Length but forwarding the body made the body the app's next request.
    smuggled = b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
    h = Harness()
    h.send(
        b"POST /api HTTP/1.1\r\nHost: a\r\nConnection: content-length, host\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled)
    )
    await h.settle()
    sent = h.up().data
    assert b"Content-Length: %d\r\n" % len(smuggled) in sent
    assert b"Host: a\r\n" in sent
    assert sent.endswith(b"\r\n\r\n" + smuggled)


async def test_connection_cannot_remove_content_length_from_a_response() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\nok")
    assert h.down.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.mark.parametrize("split", [False, True])
async def test_trailer_fields_are_dropped_never_forwarded_as_headers(split: bool) -> None:
    raw = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        b"0\r\nX-Injected: yes\r\nHost: evil\r\n\r\n"
    )
    h = Harness()
    for piece in [raw[i : i + 1] for i in range(len(raw))] if split else [raw]:
        h.send(piece)
        await h.settle()
    await h.settle()
    sent = h.up().data
    assert b"X-Injected" not in sent and b"evil" not in sent
    assert sent.endswith(b"0\r\n\r\n")  # the body still ends
    h.respond(OK)
    assert h.down.take() == OK


async def test_a_second_host_header_gets_400_and_nothing_is_forwarded() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    await h.settle()
    assert not h.upstreams
    assert h.down.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"x-smi-reason: duplicate-host\r\n" in h.down.data and h.down.closed


async def test_an_absolute_form_target_replaces_the_host_sent() -> None:
    h = Harness()
    h.send(b"GET http://web.shop/a?b HTTP/1.1\r\nHost: other\r\nAccept: */*\r\n\r\n")
    await h.settle()
    assert h.up().data == (
        b"GET /a?b HTTP/1.1\r\nAccept: */*\r\nhost: web.shop\r\n" + IDENTITY + b"\r\n"
    )


@pytest.mark.parametrize(
    "value", [b"gzip, chunked", b"xchunked", b"chunked;q=1", b"identity, chunked"]
)
async def test_a_transfer_coding_other_than_chunked_gets_501_and_nothing_is_forwarded(
    value: bytes,
) -> None:
    h = Harness()
    h.send(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: %s\r\n\r\n3\r\nabc\r\n0\r\n\r\n" % value
    )
    await h.settle()
    assert not h.upstreams or not h.up().data
    assert h.down.data.startswith(b"HTTP/1.1 501 Not Implemented\r\n") and h.down.closed


async def test_chunked_in_any_case_is_chunked() -> None:
    h = Harness()
    h.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    await h.settle()
    assert h.up().data.endswith(
        b"transfer-encoding: chunked\r\n" + IDENTITY + b"\r\n3\r\nabc\r\n0\r\n\r\n"
    )


@pytest.mark.parametrize("value", [b"gzip", b"chunked, gzip", b"gzip, chunked"])
async def test_a_response_coding_other_than_chunked_gets_502(value: bytes) -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: %s\r\n\r\n2\r\nok\r\n0\r\n\r\n" % value)
    assert h.down.data.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert h.upstreams[-1].closed


async def test_a_body_that_breaks_after_its_head_went_upstream_gets_400_at_once() -> None:
    h = Harness()
    h.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    await h.settle()
    assert h.up().data.startswith(b"POST / HTTP/1.1\r\n")  # the head is upstream
    h.send(b"3\r\nabc\r\n-1\r\n")  # a chunk size httptools refuses
    assert h.down.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert h.down.closed
    assert h.up().aborted  # it holds part of a request: never reused
    assert h.pool.idle_count() == 0


async def test_a_pipelined_request_whose_body_breaks_is_not_forwarded() -> None:
    h = Harness()
    h.send(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    )
    await h.settle()
    h.respond(OK)
    await h.settle()
    assert b"POST /2" not in h.up().data
    assert h.down.data.startswith(OK + b"HTTP/1.1 400 Bad Request\r\n")
    assert h.down.closed


async def test_connect_gets_501_and_the_connection_closes() -> None:
    # After a CONNECT head httptools takes what follows for tunnel bytes: nothing else is read.
    h = Harness()
    h.send(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    assert h.down.data.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
    assert b"connection: close\r\n" in h.down.data and h.down.closed


async def test_empty_lines_before_a_request_line_are_not_forwarded() -> None:
    h = Harness()
    h.send(b"\r\nGET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    await h.settle()
    assert h.up().data == b"GET /x HTTP/1.1\r\nHost: a\r\n" + IDENTITY + b"\r\n"


async def test_an_http10_client_gets_no_100_continue_and_no_interim_response() -> None:
    h = Harness()
    h.send(b"POST / HTTP/1.0\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n")
    h.send(b"abc")
    await h.settle()
    h.respond(OK)
    assert h.down.data.startswith(b"HTTP/1.1 200 OK\r\n")


class PeerRouter(FakeRouter):
    """Forwards to a peer proxy over mTLS (a target with TLS), like the outbound router."""

    def __init__(self) -> None:
        super().__init__()
        self.forward = Forward(Target("peer", 15006, tls=object()))  # type: ignore[arg-type]

    def route(self, ex: Exchange, peer: Any) -> Forward | Reply:
        return self.forward


async def test_a_peer_proxy_is_sent_the_expectation_and_its_deny_is_the_only_answer() -> None:
    h = Harness(router=PeerRouter())
    h.send(b"POST /x HTTP/1.1\r\nHost: web\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    await h.settle()
    assert b"expect: 100-continue\r\n" in h.up().data
    assert h.down.data == b""  # no 100 of the proxy's own
    deny = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 10\r\nconnection: close\r\n\r\nforbidden\n"
    h.respond(deny)
    assert h.down.data.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"100 Continue" not in h.down.data


async def test_a_peer_proxys_100_continue_is_relayed_once() -> None:
    h = Harness(router=PeerRouter())
    h.send(b"POST /x HTTP/1.1\r\nHost: web\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert h.down.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    h.send(b"abc")
    await h.settle()
    assert h.up().data.endswith(b"\r\n\r\nabc")
    h.respond(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
    assert h.down.take() == OK


async def test_a_101_to_a_request_that_asked_for_no_upgrade_gets_502() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /deny HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nRAW")
    await h.settle()
    assert h.down.data.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"RAW" not in h.down.data
    assert b"HTTP/1.1 403 Forbidden\r\n" in h.down.data  # the next request is still answered
    assert h.upstreams[0].closed and h.proxy.tunnel is None


async def test_a_response_after_the_one_asked_for_closes_the_upstream_connection() -> None:
    # The extra response would otherwise be read as the answer to the next client's request.
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    h.respond(OK + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert h.down.take() == OK
    assert h.upstreams[0].closed and h.pool.idle_count() == 0
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    assert len(h.upstreams) == 2  # a fresh connection for the next request


async def test_a_trailer_section_is_bounded_like_a_head() -> None:
    # httptools keeps a trailer field whole until it ends: an endless one would grow inside
    # the parser, past every limit, if the reads after the last chunk were not counted.
    limits = Limits(max_header_bytes=1024)
    h = Harness(limits=limits)
    h.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n")
    await h.settle()
    h.send(b"X-Trailer: ")
    for _ in range(4):
        h.send(b"v" * 400)
    assert h.down.data.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert h.down.closed
    assert h.up().aborted  # it holds part of a request: never reused


async def test_a_chunked_body_in_small_reads_is_not_taken_for_framing() -> None:
    limits = Limits(max_header_bytes=1024)
    h = Harness(limits=limits)
    h.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n")
    await h.settle()
    for _ in range(0x2000 // 16):
        h.send(b"x" * 16)  # a read of body alone, each well under the limit
    h.send(b"\r\n0\r\n\r\n")
    await h.settle()
    assert h.up().data.endswith(b"x" * 16 + b"\r\n0\r\n\r\n")
    h.respond(OK)
    assert h.down.take() == OK


async def test_an_http10_request_without_host_is_sent_on_with_the_upstreams() -> None:
    h = Harness()
    h.send(b"GET /healthz HTTP/1.0\r\n\r\n")
    await h.settle()
    sent = h.up().data
    assert sent.startswith(b"GET /healthz HTTP/1.1\r\n")
    assert b"host: %s:%d\r\n" % (APP.host.encode(), APP.port) in sent


@pytest.mark.parametrize(
    "target", [b"ftp://web/admin", b"admin", b"*", b"web:80", b"javascript:alert(1)"]
)
async def test_a_target_neither_a_path_nor_an_http_url_gets_400(target: bytes) -> None:
    h = Harness()
    h.send(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % target)
    await h.settle()
    assert h.down.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert h.down.closed
    assert not h.upstreams


async def test_options_asterisk_is_forwarded() -> None:
    h = Harness()
    h.send(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    assert h.up().data.startswith(b"OPTIONS * HTTP/1.1\r\n")


async def test_no_content_length_reaches_a_client_in_a_204_or_an_interim_response() -> None:
    # A 204 never has a body (RFC 9110 §8.6); a client that believed its Content-Length
    # would wait for one. A 304's Content-Length describes the resource and stays.
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 103 Early Hints\r\nContent-Length: 9\r\nLink: </s>\r\n\r\n")
    h.respond(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n")
    assert h.down.take() == (
        b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"
    )
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")
    assert h.down.take() == b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"
    assert not h.down.closed and len(h.upstreams) == 1


async def test_the_start_of_a_response_after_the_one_asked_for_closes_the_connection_too() -> None:
    # Not a whole head: httptools holds it, and the next request's response was read as its
    # continuation (the simple path read past it instead).
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    h.respond(OK + b"HTTP/1.1 200 OK\r\n")
    assert h.down.take() == OK
    assert h.upstreams[0].closed and h.pool.idle_count() == 0
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    assert len(h.upstreams) == 2
    h.respond(OK)
    assert h.down.take() == OK
