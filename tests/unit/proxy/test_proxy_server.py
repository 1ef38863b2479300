"""The downstream HTTP/1.1 protocol, driven with byte-literal requests and fake transports."""

from __future__ import annotations

import re
import sys
import time

import pytest
from proxy_fakes import Harness

from proxy.exchange import Limits
from proxy.flow import PEER_BUSY
from proxy.lists import one_slot

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _status_lines(data: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.[01] \d{3} [^\r]*", data)


async def test_get_is_forwarded_with_hop_by_hop_headers_removed_and_identity_added() -> None:
    h = Harness()
    h.send(
        b"GET /api?q=1 HTTP/1.1\r\nHost: web\r\nConnection: keep-alive, x-drop\r\n"
        b"X-Drop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: x\r\n"
        b"x-smi-source-identity: spiffe://cluster.local/ns/x/sa/forged\r\nAccept: */*\r\n\r\n"
    )
    await h.settle()
    sent = h.up().data
    assert sent.startswith(b"GET /api?q=1 HTTP/1.1\r\n")
    assert b"Host: web\r\n" in sent and b"Accept: */*\r\n" in sent
    for gone in (b"X-Drop", b"Keep-Alive", b"TE:", b"Proxy-Connection", b"forged", b"Connection"):
        assert gone not in sent
    assert sent.count(b"x-smi-source-identity") == 1
    assert b"x-smi-source-identity: spiffe://td/ns/a/sa/b\r\n" in sent
    assert sent.endswith(b"\r\n\r\n")
    h.respond(OK)
    assert h.down.take() == OK
    assert not h.down.closed


async def test_every_connection_header_counts_both_ways() -> None:
    h = Harness()
    h.send(
        b"GET / HTTP/1.1\r\nHost: w\r\nConnection: x-a\r\nConnection: keep-alive, x-b\r\n"
        b"X-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n"
    )
    await h.settle()
    sent = h.up().data
    assert b"X-A" not in sent and b"X-B" not in sent and b"X-C: 3\r\n" in sent
    h.respond(
        b"HTTP/1.1 200 OK\r\nConnection: y-a\r\nConnection: keep-alive\r\nY-A: 1\r\n"
        b"Y-B: 2\r\nContent-Length: 2\r\n\r\nok"
    )
    got = h.down.take()
    assert b"Y-A" not in got and b"Y-B: 2\r\n" in got and got.endswith(b"\r\n\r\nok")


async def test_keep_alive_reuses_one_upstream_connection() -> None:
    h = Harness()
    for _ in range(3):
        h.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
        await h.settle()
        h.respond(OK)
    assert len(h.upstreams) == 1
    assert h.up().data.count(b"GET / HTTP/1.1") == 3
    assert _status_lines(h.down.data) == [b"HTTP/1.1 200 OK"] * 3


async def test_a_keep_alive_connection_allocates_no_list_room_per_request() -> None:
    """The pending writes both ways, the request queue and the target's idle list keep the
    one slot they were made with (proxy.lists) across requests."""
    h = Harness()
    for _ in range(3):
        h.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
        await h.settle()
        h.respond(OK)
    one = sys.getsizeof(one_slot())
    conn = h.upstreams[0]
    idle = [v for v in h.pool._idle.values() if conn in v]
    assert len(idle) == 1
    lists = {"out": h.proxy.out, "queue": h.proxy.queue, "up": conn.out, "idle": idle[0]}
    assert {k: sys.getsizeof(v) for k, v in lists.items()} == dict.fromkeys(lists, one)
    assert _status_lines(h.down.data) == [b"HTTP/1.1 200 OK"] * 3


async def test_request_split_across_many_reads() -> None:
    h = Harness()
    raw = b"POST /p HTTP/1.1\r\nHost: web\r\nContent-Length: 11\r\n\r\nhello world"
    for i in range(len(raw)):
        h.send(raw[i : i + 1])
        await h.settle()
    assert h.up().data.endswith(b"\r\n\r\nhello world")
    h.respond(b"HTTP/1.1 201 Created\r\nContent-")
    h.respond(b"Length: 3\r\n\r\nab")
    h.respond(b"c")
    assert h.down.data == b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc"


async def test_pipelined_requests_are_answered_in_order_one_at_a_time() -> None:
    h = Harness()
    h.send(b"GET /1 HTTP/1.1\r\nHost: w\r\n\r\nGET /2 HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    assert h.up().data.count(b"GET ") == 1  # the second waits for the first response
    assert not h.down.reading  # and nothing more is read meanwhile
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
    await h.settle()
    assert b"GET /2 " in h.up().data
    assert h.down.reading
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
    assert h.down.data.endswith(b"\r\n\r\n1HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")


async def test_pipelined_denies_and_forwards_mix_in_order() -> None:
    h = Harness()
    h.send(
        b"GET /deny HTTP/1.1\r\nHost: w\r\n\r\nGET /ok HTTP/1.1\r\nHost: w\r\n\r\n"
        b"GET /deny2 HTTP/1.1\r\nHost: w\r\n\r\n"
    )
    await h.settle()
    h.respond(OK)
    await h.settle()
    assert _status_lines(h.down.data) == [
        b"HTTP/1.1 403 Forbidden",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 403 Forbidden",
    ]
    assert not h.down.closed


async def test_many_pipelined_local_replies_do_not_recurse() -> None:
    h = Harness(limits=Limits(max_pipeline=10_000))
    h.send(b"GET /deny HTTP/1.1\r\nHost: w\r\n\r\n" * 3000)
    assert h.down.data.count(b"403 Forbidden") == 3000


async def test_pipeline_depth_is_limited() -> None:
    h = Harness(limits=Limits(max_pipeline=4))
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n" * 10)
    await h.settle()
    for _ in range(4):
        h.respond(OK)
        await h.settle()
    out = h.down.data
    assert out.count(b"200 OK") == 4
    assert out.endswith(b"service unavailable: pipeline-limit\n")
    assert h.down.closed


async def test_chunked_request_is_rechunked_and_streamed_before_it_ends() -> None:
    h = Harness()
    h.send(b"POST /u HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
    await h.settle()
    assert b"transfer-encoding: chunked\r\n" in h.up().data
    h.send(b"lo\r\n6\r\n world\r\n0\r\n\r\n")
    await h.settle()
    body = h.up().data.split(b"\r\n\r\n", 1)[1]
    assert body == b"3\r\nhel\r\n2\r\nlo\r\n6\r\n world\r\n0\r\n\r\n"


async def test_chunked_response_is_relayed_as_chunks() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwi")
    h.respond(b"ki\r\n0\r\n\r\n")
    out = h.down.data
    assert out.startswith(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    assert out.endswith(b"2\r\nwi\r\n2\r\nki\r\n0\r\n\r\n")
    h.send(b"GET /again HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    assert b"GET /again" in h.up().data  # the connection stayed usable


async def test_http10_client_gets_a_close_delimited_body_for_a_chunked_response() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.0\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    out = h.down.data
    assert b"chunked" not in out and out.endswith(b"connection: close\r\n\r\nabc")
    assert h.down.closed


async def test_upstream_backpressure_pauses_the_client_and_resumes_it() -> None:
    h = Harness()
    h.send(b"POST / HTTP/1.1\r\nHost: w\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    await h.settle()
    h.upstreams[-1].pause_writing()
    assert not h.down.reading
    h.upstreams[-1].resume_writing()
    assert h.down.reading


async def test_client_backpressure_pauses_the_upstream() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
    h.proxy.pause_writing()
    assert not h.up().reading
    h.proxy.resume_writing()
    assert h.up().reading
    h.respond(b"67890")
    assert h.down.data.endswith(b"1234567890")


async def test_expect_100_continue_is_answered_after_authorization() -> None:
    h = Harness()
    h.send(b"PUT /f HTTP/1.1\r\nHost: w\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    await h.settle()
    assert h.down.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert b"Expect" not in h.up().data
    h.send(b"data")
    await h.settle()
    assert h.up().data.endswith(b"\r\n\r\ndata")
    h.respond(OK)
    assert h.down.data == OK


async def test_denied_expect_100_gets_403_and_no_continue() -> None:
    h = Harness()
    h.send(b"PUT /deny HTTP/1.1\r\nHost: w\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    out = h.down.data
    assert out.startswith(b"HTTP/1.1 403 Forbidden\r\n") and b"100 Continue" not in out
    assert b"connection: close" in out and h.down.closed
    assert h.upstreams == []


async def test_deny_names_the_reason_and_keeps_the_connection() -> None:
    h = Harness()
    h.send(b"GET /deny HTTP/1.1\r\nHost: w\r\n\r\n")
    out = h.down.take()
    assert out.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"x-smi-reason: no-route-match\r\n" in out
    assert out.endswith(b"\r\n\r\nforbidden: no-route-match\n")
    assert not h.down.closed
    h.send(b"GET /fine HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    assert b"GET /fine" in h.up().data


async def test_oversized_headers_get_431_and_close() -> None:
    h = Harness(limits=Limits(max_header_bytes=1024))
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
    assert h.down.data.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert h.down.closed and h.upstreams == []


async def test_too_many_headers_get_431() -> None:
    h = Harness(limits=Limits(max_headers=10))
    headers = b"".join(b"X-%d: v\r\n" % i for i in range(11))
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n" + headers + b"\r\n")
    assert b"too-many-headers" in h.down.data and h.down.closed


async def test_oversized_headers_trickled_are_cut_off_without_buffering() -> None:
    h = Harness(limits=Limits(max_header_bytes=4096))
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\nX-Long: ")
    for _ in range(100):
        if h.down.closed:
            break
        h.send(b"b" * 100)
    assert h.down.closed and b" 431 " in h.down.data


async def test_malformed_request_gets_400_and_close() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost w\r\n\r\n")
    assert h.down.data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and h.down.closed


async def test_missing_host_gets_400() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\n\r\n")
    assert b"missing-host" in h.down.data and h.down.closed


async def test_malformed_request_after_a_good_one_is_answered_in_order() -> None:
    h = Harness()
    h.send(b"GET /1 HTTP/1.1\r\nHost: w\r\n\r\nBROKEN\r\n\r\n")
    await h.settle()
    assert h.down.data == b""
    h.respond(OK)
    out = h.down.data
    assert out.startswith(OK[: len(b"HTTP/1.1 200 OK")])
    assert h.down.closed


async def test_connect_refused_gives_503() -> None:
    h = Harness()
    h.connect_mode = "refuse"
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    out = h.down.data
    assert out.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and b"connect" in out
    assert h.metrics.inbound.errors == {"connect": 1}


async def test_connect_timeout_gives_503() -> None:
    h = Harness()
    h.connect_mode = "hang"
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    deadline = time.monotonic() + 2
    while not h.down.data and time.monotonic() < deadline:
        await h.settle()
    assert b"503 Service Unavailable" in h.down.data and b"connect-timeout" in h.down.data


async def test_upstream_closing_before_responding_gives_502() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.upstream_closes()
    assert h.down.data.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")


RESPONSE_WITH_HOP_HEADERS = (
    b"HTTP/1.1 200 Fine\r\nServer: app\r\nConnection: keep-alive, X-Secret\r\n"
    b"X-Secret: s\r\nKeep-Alive: timeout=5\r\nCONTENT-length: 2\r\nTE: x\r\nTrailer: y\r\n"
    b"Proxy-Connection: z\r\nX-Mixed-Case:\tV \r\nContent-Type: text/plain\r\nUpgrade: no\r\n\r\nok"
)


async def test_response_hop_by_hop_headers_go_and_the_rest_pass_as_they_came() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(RESPONSE_WITH_HOP_HEADERS)
    assert h.down.take() == (
        b"HTTP/1.1 200 Fine\r\nServer: app\r\nCONTENT-length: 2\r\nX-Mixed-Case:\tV \r\n"
        b"Content-Type: text/plain\r\n\r\nok"
    )
    assert not h.down.closed


@pytest.mark.parametrize(
    ("response", "relayed"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"),
        (
            b"HTTP/1.1 200 OK\r\nKeep-Alive: 5\r\nContent-Length: 2\r\n"
            b"Connection: keep-alive\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ),
        (
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nA: 1\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nA: 1\r\nContent-Length: 2\r\n\r\nok",
        ),
        (
            b"HTTP/1.1 200 OK\r\nConnectionx: 1\r\nUpgraded: 2\r\nTE-x: 3\r\nte: t\r\n"
            b"Upgrade:\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nConnectionx: 1\r\nUpgraded: 2\r\nTE-x: 3\r\n"
            b"Content-Length: 2\r\n\r\nok",
        ),
    ],
    ids=["status-line-only", "all-but-one-dropped", "first-dropped", "look-alike-names"],
)
async def test_response_header_lines_are_cut_exactly_around_the_dropped_ones(
    response: bytes, relayed: bytes
) -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(response)
    assert h.down.take() == relayed


async def test_response_head_read_a_byte_at_a_time_is_relayed_the_same() -> None:
    h = Harness()
    for _ in range(2):  # (the second over the pooled connection)
        h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
        await h.settle()
        for i in range(len(RESPONSE_WITH_HOP_HEADERS)):
            h.respond(RESPONSE_WITH_HOP_HEADERS[i : i + 1])
        assert h.down.take().endswith(b"Content-Type: text/plain\r\n\r\nok")
    assert len(h.upstreams) == 1


async def test_a_large_response_head_trickled_in_is_relayed_whole() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%05d: %s\r\n" % (i, b"v" * 50) for i in range(900))
    response = head + b"Content-Length: 2\r\n\r\nok"
    assert 50_000 < len(head) < 64 * 1024
    for i in range(0, len(response), 100):
        h.respond(response[i : i + 100])
    assert h.down.take() == response and not h.up().closed


async def test_an_endless_response_head_gets_502_and_the_upstream_is_closed() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nX-Long: ")
    for _ in range(80):
        h.respond(b"a" * 1024)
        if h.down.data:
            break
    assert h.down.data.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert h.up().closed and not h.down.closed


async def test_a_response_head_over_the_limit_in_one_read_gets_502() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nX-Long: %s\r\nContent-Length: 0\r\n\r\n" % (b"a" * 70_000))
    assert h.down.data.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert h.up().closed and not h.down.closed


async def test_a_response_the_parser_refuses_gets_502_and_the_upstream_is_closed() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n")
    assert h.down.data.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert h.up().closed


async def test_upstream_closing_mid_body_aborts_the_client() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    h.upstream_closes()
    assert h.down.aborted  # a short body must not look complete


async def test_stale_pooled_connection_is_retried_once() -> None:
    h = Harness()
    h.send(b"GET /1 HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(OK)
    h.send(b"GET /2 HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.upstream_closes(0)  # the app had closed its idle connection
    await h.settle()
    assert len(h.upstreams) == 2 and b"GET /2" in h.up(1).data
    h.respond(OK, 1)
    assert _status_lines(h.down.data) == [b"HTTP/1.1 200 OK"] * 2


async def test_close_delimited_response_ends_with_the_upstream() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.0 200 OK\r\n\r\nall of it")
    h.upstream_closes()
    out = h.down.data
    assert b"connection: close\r\n" in out and out.endswith(b"all of it")
    assert h.down.closed and not h.down.aborted


async def test_head_response_has_no_body_and_the_connection_is_reused() -> None:
    h = Harness()
    h.send(b"HEAD / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(OK)
    assert _status_lines(h.down.data) == [b"HTTP/1.1 200 OK"] * 2
    assert h.down.data.endswith(b"\r\n\r\nok")
    assert len(h.upstreams) == 1


async def test_204_and_304_have_no_body() -> None:
    h = Harness()
    for status in (b"204 No Content", b"304 Not Modified"):
        h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
        await h.settle()
        h.respond(b"HTTP/1.1 " + status + b"\r\n\r\n")
    assert len(_status_lines(h.down.data)) == 2 and not h.down.closed


async def test_interim_responses_are_relayed_but_not_a_second_100() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n" + OK)
    assert _status_lines(h.down.data) == [b"HTTP/1.1 103 Early Hints", b"HTTP/1.1 200 OK"]


async def test_denied_upgrade_gets_403_and_close() -> None:
    h = Harness()
    h.send(b"GET /deny HTTP/1.1\r\nHost: w\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert h.down.data.startswith(b"HTTP/1.1 403 ") and h.down.closed
    assert h.upstreams == []


async def test_upgrade_becomes_a_tunnel_after_101() -> None:
    h = Harness()
    h.send(b"GET /ws HTTP/1.1\r\nHost: w\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nEARLY")
    await h.settle()
    sent = h.up().data
    assert b"connection: upgrade\r\nupgrade: websocket\r\n" in sent and b"EARLY" not in sent
    h.respond(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nHI"
    )
    assert h.down.data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert h.down.data.endswith(b"\r\n\r\nHI")
    assert h.up().data.endswith(b"EARLY")
    h.send(b"\x81\x02ab")
    assert h.up().data.endswith(b"\x81\x02ab")
    h.respond(b"\x81\x02cd")
    assert h.down.data.endswith(b"\x81\x02cd")
    h.upstream_closes()
    assert h.down.closed


async def test_upgrade_refused_by_the_app_closes_after_the_response() -> None:
    h = Harness()
    h.send(b"GET /ws HTTP/1.1\r\nHost: w\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
    assert b"426" in h.down.data and h.down.closed


async def test_slow_request_head_gets_408() -> None:
    h = Harness(limits=Limits(header_timeout=5))
    h.send(b"GET / HTTP/1.1\r\nHo")
    h.state.check(time.monotonic() + 6)
    assert h.down.data.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and h.down.closed


async def test_silent_connection_is_closed_without_a_response() -> None:
    h = Harness(limits=Limits(header_timeout=5))
    h.state.check(time.monotonic() + 6)
    assert h.down.closed and h.down.data == b""


async def test_slow_request_body_gets_408() -> None:
    h = Harness(limits=Limits(body_timeout=5))
    h.send(b"POST / HTTP/1.1\r\nHost: w\r\nContent-Length: 10\r\n\r\nabc")
    await h.settle()
    h.state.check(time.monotonic() + 6)
    assert h.down.data.startswith(b"HTTP/1.1 408 ") and h.down.closed
    assert h.up().aborted


async def test_slow_upstream_gets_504() -> None:
    h = Harness(limits=Limits(response_timeout=5))
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.state.check(time.monotonic() + 6)
    assert h.down.data.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n") and h.down.closed
    assert h.up().aborted
    assert h.metrics.inbound.responses == {504: 1}


async def test_idle_keep_alive_connection_is_closed() -> None:
    h = Harness(limits=Limits(idle_timeout=5))
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(OK)
    h.state.check(time.monotonic() + 1)
    assert not h.down.closed
    h.state.check(time.monotonic() + 6)
    assert h.down.closed and h.down.data == OK


@pytest.mark.parametrize(
    "request_",
    [
        b"GET /deny HTTP/1.1\r\nHost: w\r\n\r\n",
        b"GET /deny HTTP/1.1\r\nHost: w\r\nContent-Length: 0\r\n\r\n",
        b"POST /deny HTTP/1.1\r\nHost: w\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /deny HTTP/1.1\r\nHost: w\r\nConnection: keep-alive\r\n\r\n",
    ],
)
async def test_a_connection_answered_by_the_proxy_waits_as_an_idle_one(request_: bytes) -> None:
    """After a local reply (here a deny), however the request was read, the kept connection
    is idle: no 408 at the header timeout, closed silently at the idle timeout."""
    h = Harness(limits=Limits(header_timeout=5, idle_timeout=30))
    h.send(request_)
    await h.settle()
    answered = h.down.take()
    assert _status_lines(answered) == [b"HTTP/1.1 403 Forbidden"]
    h.state.check(time.monotonic() + 6)
    assert not h.down.closed and h.down.data == b""
    h.state.check(time.monotonic() + 31)
    assert h.down.closed and h.down.data == b""
    assert h.metrics.inbound.errors == {}


async def test_a_refused_request_whose_body_is_still_coming_gets_no_second_answer() -> None:
    """The proxy answered (a deny) before the body ended: the rest of the body is read and
    dropped within the body timeout, and the client, already answered, gets no 408 for it."""
    h = Harness(limits=Limits(header_timeout=5, body_timeout=30, idle_timeout=60))
    h.send(b"POST /deny HTTP/1.1\r\nHost: w\r\nContent-Length: 10\r\n\r\nabc")
    await h.settle()
    assert _status_lines(h.down.take()) == [b"HTTP/1.1 403 Forbidden"]
    h.state.check(time.monotonic() + 6)  # past the header timeout: the body may still come
    assert not h.down.closed and h.down.data == b""
    h.send(b"defghij")  # the rest, dropped: the connection is idle after it
    h.state.check(time.monotonic() + 31)
    assert not h.down.closed and h.down.data == b""
    h.send(b"GET /deny HTTP/1.1\r\nHost: w\r\n\r\n")
    assert _status_lines(h.down.take()) == [b"HTTP/1.1 403 Forbidden"]
    h2 = Harness(limits=Limits(header_timeout=5, body_timeout=30))
    h2.send(b"POST /deny HTTP/1.1\r\nHost: w\r\nContent-Length: 10\r\n\r\nabc")
    await h2.settle()
    h2.down.take()
    h2.state.check(time.monotonic() + 31)  # the body never ends: closed, without a 408
    assert h2.down.closed and h2.down.data == b""
    assert h.metrics.inbound.errors == {} == h2.metrics.inbound.errors


async def test_drain_closes_idle_connections_and_finishes_in_flight_ones() -> None:
    idle, busy = Harness(), Harness()
    busy.state = idle.state
    busy.proxy.state = idle.state
    idle.state.connections.add(busy.proxy)
    busy.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await busy.settle()
    idle.proxy.shutdown()
    busy.proxy.shutdown()
    idle.state.draining = True
    assert idle.down.closed and not busy.down.closed
    busy.respond(OK)
    assert b"connection: close\r\n" in busy.down.data and busy.down.closed


async def test_counts_requests_responses_and_latency() -> None:
    h = Harness()
    h.send(b"GET /deny HTTP/1.1\r\nHost: w\r\n\r\nGET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
    stats = h.metrics.inbound
    assert stats.responses == {403: 1, 500: 1}
    assert stats.latency.count == 2
    assert stats.open == 1
    h.proxy.connection_lost(None)
    assert stats.open == 0 and stats.close_total == 1


async def test_peer_busy_flag_is_released_when_the_exchange_ends() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.upstreams[-1].pause_writing()
    h.respond(OK)
    assert h.proxy.flow is not None and not h.proxy.flow.reasons & PEER_BUSY
    assert h.down.reading


async def test_a_head_read_whole_is_forwarded_as_it_came_plus_the_identity() -> None:
    head = b"GET /a/b?c=1 HTTP/1.1\r\nHost: web\r\nX-Mixed-Case:  v  \r\naccept: */*\r\n\r\n"
    identity = b"x-smi-source-identity: spiffe://td/ns/a/sa/b\r\n"
    h = Harness()
    h.send(head)
    await h.settle()
    assert h.up().take() == head[:-2] + identity + b"\r\n"
    h.respond(OK)
    h.send(head[:30])  # the same head over two reads: rebuilt from the parsed headers
    h.send(head[30:])
    await h.settle()
    assert h.up().take() == (
        b"GET /a/b?c=1 HTTP/1.1\r\nHost: web\r\nX-Mixed-Case: v  \r\naccept: */*\r\n"
        + identity
        + b"\r\n"
    )


@pytest.mark.parametrize(
    ("line", "closes"),
    [
        (b"GET  /x  HTTP/1.1", False),  # spaces httptools accepts: the version is still 1.1
        (b"GET  /x  HTTP/1.0", True),
        (b"GET /HTTP/1.1 HTTP/1.0", True),
    ],
)
async def test_the_version_of_a_head_read_whole_is_its_request_lines(
    line: bytes, closes: bool
) -> None:
    h = Harness()
    h.send(line + b"\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(OK)
    assert h.down.closed is closes
    assert (b"connection: close" in h.down.data) is closes


async def test_a_head_read_whole_is_rebuilt_when_something_in_it_changes() -> None:
    identity = b"x-smi-source-identity: spiffe://td/ns/a/sa/b\r\n"
    for head, sent in (
        (  # HTTP/1.0 goes upstream as HTTP/1.1
            b"GET / HTTP/1.0\r\nHost: web\r\nA: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: web\r\nA: 1\r\n" + identity + b"\r\n",
        ),
        (  # a proxy-form target becomes origin-form, its authority the Host
            b"GET http://web.shop/x HTTP/1.1\r\nA: 1\r\n\r\n",
            b"GET /x HTTP/1.1\r\nA: 1\r\nhost: web.shop\r\n" + identity + b"\r\n",
        ),
        (  # the caller's identity header goes, ours stays
            b"GET / HTTP/1.1\r\nX-SMI-Source-Identity: forged\r\nHost: web\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: web\r\n" + identity + b"\r\n",
        ),
    ):
        h = Harness()
        h.send(head)
        await h.settle()
        assert h.up().take() == sent, head


@pytest.mark.parametrize(
    "denied",
    [
        b"POST /deny HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
        b"POST /deny HTTP/1.1\r\nHost: w\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
        b"GET /deny HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n",
        b"GET /deny HTTP/1.0\r\nHost: w\r\n\r\n",
    ],
)
async def test_a_request_pipelined_behind_a_closing_answer_is_never_processed(
    denied: bytes,
) -> None:
    """RFC 9112 §9.6: after a response with `connection: close`, no further request on the
    connection is processed. One read held the denied request and a POST behind it: the 403
    closed the connection, yet httptools read on and the POST went to the app over a pooled
    connection, its answer lost (a client retrying would make the app do it twice)."""
    h = Harness()
    h.send(b"GET /warm HTTP/1.1\r\nHost: w\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    h.down.take()
    h.up().take()  # the warm-up request; its connection is back in the pool
    tagged = b"POST /api/x HTTP/1.1\r\nHost: w\r\nX-Tag: once\r\nContent-Length: 2\r\n\r\nhi"
    h.send(denied + tagged)
    await h.settle()
    out = h.down.data
    assert out.startswith(b"HTTP/1.1 403 Forbidden\r\n") and out.count(b"HTTP/1.1") == 1
    assert b"connection: close" in out and h.down.closed
    assert all(b"X-Tag" not in h.up(i).data for i in range(len(h.upstreams)))
