"""HTTP/1.1 message framing under hostile input (RFC 9112 §6–7, RFC 9110), both ways: a request
the proxy frames one way must reach the app framed the same way or not at all, and a response
the proxy cannot frame must never leave the client connection (or a pooled upstream one) out
of step. Driven with byte literals through the real protocol and fake transports."""

from __future__ import annotations

import asyncio

import pytest
from proxy_fakes import Harness

from proxy.http1 import origin_form
from proxy.metrics import Metrics
from proxy.policy import PolicyHolder
from proxy.routing import InboundRouter, PeerIdentities
from proxy.upstream import Target
from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy
from smi.compiler.ir.index import PolicyIndex
from smi.identity import Identity

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
IDENTITY = b"x-smi-source-identity: spiffe://td/ns/a/sa/b\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"


def _post(*headers: bytes, body: bytes = b"", version: bytes = b"1.1") -> bytes:
    return b"POST / HTTP/%s\r\nHost: a\r\n%s\r\n%s" % (version, b"".join(headers), body)


async def _refused(request: bytes) -> Harness:
    """Send `request`; assert the client got an answer of the proxy's and a closed
    connection, and the app nothing at all."""
    h = Harness()
    h.send(request)
    await h.settle()
    assert not h.upstreams or not h.up().data
    assert h.down.closed
    return h


# --- requests the parser refuses (right already; each a known smuggling shape) -------------

_REFUSED = [
    ("CL and TE", _post(b"Content-Length: 5\r\n", CHUNKED, body=b"0\r\n\r\nGET /x")),
    ("TE and CL", _post(CHUNKED, b"Content-Length: 5\r\n", body=b"0\r\n\r\nGET /x")),
    ("two CL, same", _post(b"Content-Length: 3\r\nContent-Length: 3\r\n", body=b"abc")),
    ("two CL, differing", _post(b"Content-Length: 3\r\nContent-Length: 4\r\n", body=b"abcd")),
    ("CL list", _post(b"Content-Length: 3, 3\r\n", body=b"abc")),
    ("CL +3", _post(b"Content-Length: +3\r\n", body=b"abc")),
    ("CL 0x3", _post(b"Content-Length: 0x3\r\n", body=b"abc")),
    ("CL past 2^64", _post(b"Content-Length: 18446744073709551619\r\n", body=b"abc")),
    ("TE chunked twice", _post(CHUNKED, CHUNKED, body=b"0\r\n\r\n")),
    ("TE chunked, chunked", _post(b"Transfer-Encoding: chunked, chunked\r\n", body=b"0\r\n\r\n")),
    ("TE chunked, gzip", _post(b"Transfer-Encoding: chunked, gzip\r\n", body=b"0\r\n\r\n")),
    ("TE vertical tab", _post(b"Transfer-Encoding: \x0bchunked\r\n", body=b"0\r\n\r\n")),
    ("chunk size overflow", _post(CHUNKED, body=b"10000000000000003\r\nabc\r\n0\r\n\r\n")),
    ("chunk size junk", _post(CHUNKED, body=b"3z\r\nabc\r\n0\r\n\r\n")),
    ("chunk size space", _post(CHUNKED, body=b" 3\r\nabc\r\n0\r\n\r\n")),
    ("chunk size 0x", _post(CHUNKED, body=b"0x3\r\nabc\r\n0\r\n\r\n")),
    ("chunk ext CRLF", _post(CHUNKED, body=b'3;a="x\r\n0\r\n\r\nGET /x"\r\nabc\r\n0\r\n\r\n')),
    ("chunk line bare LF", _post(CHUNKED, body=b"3\nabc\n0\n\n")),
    ("chunk data no CRLF", _post(CHUNKED, body=b"3\r\nabcXX0\r\n\r\n")),
    ("request line bare LF", b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
    ("header bare LF", b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n"),
    ("header bare CR", b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n"),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"),
    ("space before colon", _post(b"Content-Length : 3\r\n", body=b"abc")),
    ("NUL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n"),
    ("CTL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n"),
    ("name not a token", b"GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n"),
    ("HTTP/1.0 TE and CL", _post(CHUNKED, b"Content-Length: 3\r\n", version=b"1.0")),
]


@pytest.mark.parametrize(("request_"), [r for _, r in _REFUSED], ids=[n for n, _ in _REFUSED])
async def test_a_request_framed_ambiguously_gets_400_and_reaches_nothing(request_: bytes) -> None:
    h = await _refused(request_)
    assert h.down.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")


# --- requests the proxy refuses itself (fixed) ----------------------------------------------


@pytest.mark.parametrize("length", [b"9223372036854775808", b"18446744073709551615"])
async def test_a_content_length_past_signed_64_bits_gets_400(length: bytes) -> None:
    # httptools reads up to 2^64-1; an app reading a signed 64-bit number would not.
    h = await _refused(_post(b"Content-Length: %s\r\n" % length, body=b"abc"))
    assert h.down.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")


async def test_the_largest_signed_64_bit_content_length_is_sent_on() -> None:
    h = Harness()
    h.send(_post(b"Content-Length: 9223372036854775807\r\n", body=b"abc"))
    await h.settle()
    assert h.up().data.endswith(b"Content-Length: 9223372036854775807\r\n" + IDENTITY + b"\r\nabc")


async def test_chunked_in_an_http10_request_gets_400() -> None:
    # RFC 9112 §6.1: its framing is faulty. A hop before the proxy that read no body there
    # would take the chunks for the next request.
    request = _post(CHUNKED, body=b"0\r\n\r\nGET /admin HTTP/1.0\r\n\r\n", version=b"1.0")
    h = await _refused(request)
    assert h.down.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")


@pytest.mark.parametrize(
    "request_",
    [
        b"GET ftp://x HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    ],
    ids=["bad target", "missing host"],
)
async def test_a_request_refused_in_its_head_is_answered_once(request_: bytes) -> None:
    # The parser reads on past a head the proxy refused, and may then refuse what follows:
    # that answered the client a second time, on a connection already closed.
    h = Harness()
    h.send(request_)
    assert h.down.data.count(b"HTTP/1.1 400 Bad Request\r\n") == 1 and h.down.closed


_UPGRADE = b"Connection: upgrade\r\nUpgrade: websocket\r\n"


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 3\r\n", CHUNKED],
    ids=["content-length", "chunked"],
)
async def test_an_upgrade_request_with_a_body_gets_501_and_reaches_nothing(framing: bytes) -> None:
    # httptools reads no body of an upgrade request. Its head sent on, an app that answered
    # without switching left the pooled connection waiting for the body: the next request on
    # it (anyone's) lost its first bytes to that body, and the rest was read as a request.
    body = b"abc" if framing != CHUNKED else b"3\r\nabc\r\n0\r\n\r\n"
    h = await _refused(_post(_UPGRADE, framing, body=body))
    assert h.down.data.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
    assert b"x-smi-reason: upgrade-with-body\r\n" in h.down.data


@pytest.mark.parametrize(
    ("upgrade", "version"),
    [
        (b"h2c", b"1.1"),
        (b"websocket, H2C", b"1.1"),
        (b"HTTP/2.0", b"1.1"),
        (b"websocket", b"1.0"),  # RFC 9110 §7.8: ignored in an HTTP/1.0 request
    ],
)
async def test_an_upgrade_to_http2_or_from_http10_is_not_sent_on(
    upgrade: bytes, version: bytes
) -> None:
    # After a 101 to h2c, every further request would reach the app unauthorized.
    h = Harness()
    h.send(
        b"GET / HTTP/%s\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: %s\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        % (version, upgrade)
    )
    await h.settle()
    assert h.up().data == b"GET / HTTP/1.1\r\nHost: a\r\n" + IDENTITY + b"\r\n"
    assert "upgrade" not in h.router.seen[0][2]  # what authorize saw is what the app got
    h.respond(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n")
    await h.settle()
    assert h.down.data.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert h.down.closed and h.proxy.tunnel is None


async def test_http2_settings_goes_with_the_dropped_h2c_upgrade() -> None:
    # A client that does not list HTTP2-Settings in Connection: it means nothing without the
    # upgrade it came with (Envoy removes it too).
    h = Harness()
    h.send(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
    )
    await h.settle()
    assert h.up().data == b"GET / HTTP/1.1\r\nHost: a\r\n" + IDENTITY + b"\r\n"
    assert "http2-settings" not in h.router.seen[0][2]


async def test_a_declined_http2_upgrade_is_answered_and_the_connection_closes() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n")
    await h.settle()
    h.respond(OK)
    await h.settle()
    assert h.down.data == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nconnection: close\r\n\r\nok"
    assert h.down.closed
    assert h.pool.idle_count() == 1  # the app's side is whole: its connection is reused


async def test_a_request_line_with_runs_of_spaces_is_sent_on_rebuilt() -> None:
    # httptools accepts `GET  /x  HTTP/1.1`; an app splitting on single spaces reads another
    # target (Go: an empty one) from the line as it came.
    h = Harness()
    h.send(b"GET  /x  HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    assert h.up().data == b"GET /x HTTP/1.1\r\nHost: a\r\n" + IDENTITY + b"\r\n"


# --- absolute-form targets (RFC 9112 §3.2.2) ------------------------------------------------


@pytest.mark.parametrize(
    ("url", "target", "authority"),
    [
        (b"http://web/a?b", b"/a?b", b"web"),
        (b"http://web?x=/admin", b"/?x=/admin", b"web"),  # fixed: was /admin at `web?x=`
        (b"HTTPS://web:8443", b"/", b"web:8443"),
        (b"http://web#/admin", b"/#/admin", b"web"),
        (b"/a", b"/a", None),
        (b"*", b"*", None),
    ],
)
def test_origin_form_ends_the_authority_at_the_path_query_or_fragment(
    url: bytes, target: bytes, authority: bytes | None
) -> None:
    assert origin_form(url) == (target, authority)


async def test_an_absolute_form_target_with_a_query_and_no_path_keeps_its_query() -> None:
    h = Harness()
    h.send(b"GET http://web?x=/admin HTTP/1.1\r\nHost: web\r\n\r\n")
    await h.settle()
    assert h.up().data == b"GET /?x=/admin HTTP/1.1\r\nhost: web\r\n" + IDENTITY + b"\r\n"


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        (b"http://web", b"*"),
        (b"http://web:8080", b"*"),
        (b"http://web/", b"/"),
        (b"http://web?a", b"/?a"),
    ],
)
async def test_an_absolute_form_options_without_a_path_is_sent_on_as_asterisk(
    url: bytes, sent: bytes
) -> None:
    # RFC 9112 §3.2.4: `OPTIONS http://web` asks about the server, not about `/`.
    h = Harness()
    h.send(b"OPTIONS %s HTTP/1.1\r\nHost: web\r\n\r\n" % url)
    await h.settle()
    assert h.up().data.startswith(b"OPTIONS %s HTTP/1.1\r\n" % sent)


@pytest.mark.parametrize("url", [b"http:///a", b"http://user@web/a", b"http://evil@web"])
async def test_an_absolute_form_target_with_no_host_or_with_userinfo_gets_400(url: bytes) -> None:
    # RFC 9110 §4.2.1 (an empty host is invalid) and §4.2.4 (userinfo: treat as an error).
    h = await _refused(b"GET %s HTTP/1.1\r\nHost: web\r\n\r\n" % url)
    assert h.down.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")


WEB = Identity("shop", "web").spiffe_id
FRONT = Identity("shop", "front").spiffe_id
HOST_RULE = MeshPolicy(
    revision=1,
    mode="deny",
    destinations={
        WEB: (
            AuthzRule(
                origin="shop/TrafficTarget/front-to-web",
                sources=(FRONT,),
                http=(
                    HttpMatch(
                        origin="g#internal",
                        methods=("GET",),
                        path_regex="/.*",
                        headers=(("host", "^internal$"),),
                    ),
                ),
            ),
        )
    },
)


class _Front(PeerIdentities):
    def of(self, transport: asyncio.BaseTransport) -> str | None:
        return FRONT


async def test_a_host_match_is_decided_on_the_host_the_app_gets() -> None:
    # The absolute-form target's authority replaces `Host` on the way to the app; a rule for
    # `host: internal` must not pass a request the app receives for `host: public`.
    holder = PolicyHolder(Metrics())
    holder.index = PolicyIndex.build(HOST_RULE)
    router = InboundRouter(
        identity=WEB,
        app=Target("127.0.0.1", 8080),
        app_port=8080,
        policy=holder,
        metrics=Metrics(),
        peers=_Front(trust_domain="cluster.local"),
    )
    h = Harness(router=router)
    h.send(b"GET http://public/x HTTP/1.1\r\nHost: internal\r\n\r\n")
    h.send(b"GET http://internal/x HTTP/1.1\r\nHost: public\r\n\r\n")
    await h.settle()
    assert h.down.data.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    h.respond(OK)
    assert h.down.data.endswith(OK)
    assert b"GET /x HTTP/1.1\r\nhost: internal\r\n" in h.up().data
    assert b"public" not in h.up().data


# --- requests sent on as they came (right already) ------------------------------------------


@pytest.mark.parametrize(
    ("request_", "sent"),
    [
        (  # a body on GET is the request's, not the next request
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n" + IDENTITY + b"\r\nabc",
        ),
        (  # chunk extensions are re-chunked away
            _post(CHUNKED, body=b'3;a="b;c"\r\nabc\r\n0\r\n\r\n'),
            b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\n"
            + IDENTITY
            + b"\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
        (  # a Connection header cannot take away the identity the proxy adds
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, x-smi-source-identity, x-a\r\n"
            b"x-a: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n" + IDENTITY + b"\r\n",
        ),
    ],
    ids=["GET with a body", "chunk extensions", "Connection naming the identity"],
)
async def test_a_request_is_sent_on_framed_as_it_was_read(request_: bytes, sent: bytes) -> None:
    h = Harness()
    h.send(request_)
    await h.settle()
    assert h.up().data == sent


# --- responses (a hostile or broken app) ----------------------------------------------------

_BAD_RESPONSES = [
    (
        "CL and TE",
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n" + CHUNKED + b"\r\n2\r\nok\r\n0\r\n\r\n",
    ),
    (
        "TE and CL",
        b"HTTP/1.1 200 OK\r\n" + CHUNKED + b"Content-Length: 9\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ),
    ("two CL", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk"),
    ("CL list", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok"),
    ("bare LF", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
    ("space before colon", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"),
    ("NUL in a value", b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok"),
    ("status of 4 digits", b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("status below 100", b"HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok"),  # fixed
    ("status 600", b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok"),  # fixed
    ("status 999", b"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok"),  # fixed
    # (fixed: requests with these get 400; httptools reads up to 2^64-1)
    ("CL past 2^63-1", b"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\nok"),
    ("CL 2^64-1", b"HTTP/1.1 200 OK\r\ncontent-length:18446744073709551615\r\n\r\nok"),
]


@pytest.mark.parametrize(
    "response", [r for _, r in _BAD_RESPONSES], ids=[n for n, _ in _BAD_RESPONSES]
)
async def test_a_response_framed_ambiguously_gets_502_and_its_connection_closes(
    response: bytes,
) -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    h.respond(response)
    await h.settle()
    assert h.down.take().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert h.upstreams[0].closed and h.pool.idle_count() == 0
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")  # the client's connection is still in step
    await h.settle()
    h.respond(OK)
    assert h.down.take() == OK


async def test_the_largest_signed_64_bit_content_length_is_relayed() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    h.respond(b"HTTP/1.1 200 OK\r\ncontent-length:  9223372036854775807 \r\n\r\nok")
    assert h.down.take() == b"HTTP/1.1 200 OK\r\ncontent-length:  9223372036854775807 \r\n\r\nok"
    assert not h.upstreams[0].closed


@pytest.mark.parametrize(
    ("response", "relayed", "pooled"),
    [
        (  # 100 (the proxy answered any expectation itself) dropped, 103 relayed
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n" + OK,
            b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n" + OK,
            True,
        ),
        (  # a body after a 204 is not the next response: that connection is not reused
            b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            False,
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\n" + CHUNKED + b"\r\n5\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\n\r\n",
            False,
        ),
    ],
    ids=["1xx", "204 with a body", "304 with a body"],
)
async def test_interim_and_bodiless_responses_keep_the_client_in_step(
    response: bytes, relayed: bytes, pooled: bool
) -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    h.respond(response)
    assert h.down.take() == relayed
    assert h.pool.idle_count() == (1 if pooled else 0)
    h.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await h.settle()
    h.respond(OK)
    assert h.down.take() == OK and not h.down.closed


# --- a request the client ends before its body does (RFC 9112 §8) ---------------------------


@pytest.mark.parametrize(
    "request_",
    [
        _post(b"Content-Length: 10\r\n", body=b"abc"),
        _post(CHUNKED, body=b"3\r\nabc\r\n"),
        _post(CHUNKED, body=b"3\r\nabc\r\n0\r\n"),  # the trailer section's end still to come
    ],
    ids=["content-length", "chunked", "chunked, no final CRLF"],
)
async def test_a_body_cut_short_by_the_clients_end_aborts_the_upstream_at_once(
    request_: bytes,
) -> None:
    # An incomplete message can never be completed: the app's connection, holding part of
    # it, was kept for the whole body timeout (30 s), and the client then got a 408.
    h = Harness()
    h.send(request_)
    await h.settle()
    assert h.up().data.startswith(b"POST / HTTP/1.1\r\n")
    assert h.proxy.eof_received() is True  # a half-close: the client still reads
    assert h.up().aborted and h.pool.idle_count() == 0
    assert h.down.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"x-smi-reason: incomplete-request\r\n" in h.down.data and h.down.closed
    assert h.metrics.inbound.responses == {400: 1}


async def test_an_end_after_a_whole_request_still_gets_the_response() -> None:
    h = Harness()
    h.send(_post(b"Content-Length: 3\r\n", body=b"abc"))
    await h.settle()
    assert h.proxy.eof_received() is True
    assert not h.up().closed and not h.down.closed
    h.respond(OK)
    assert h.down.data == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nconnection: close\r\n\r\nok"
    assert h.down.closed


# --- Host values (RFC 9112 §3.2: `uri-host [":" port]`, else 400) ---------------------------

_BAD_HOSTS = [b"api, evil", b"user@evil", b"evil/path", b"api evil", b"api:x", b"api:80:80"]
_BAD_HOSTS += [b"[::1", b"[::g]", b"[fe80::1%eth0]", b"a%4g", b"api\xc3\xa9", b"api:\xb2"]


@pytest.mark.parametrize("host", _BAD_HOSTS)
@pytest.mark.parametrize("body", [False, True], ids=["GET", "POST"])
async def test_an_invalid_host_gets_400_and_reaches_nothing(host: bytes, body: bool) -> None:
    # Forwarded unchecked, `Host: api, evil` reached the app (a GET read by proxy.simplehead,
    # a POST by httptools), which may take either host from it.
    request = (
        _post(b"Content-Length: 3\r\n", body=b"abc").replace(b"Host: a", b"Host: " + host)
        if body
        else b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host
    )
    h = await _refused(request)
    assert h.down.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"x-smi-reason: malformed-request\r\n" in h.down.data


@pytest.mark.parametrize(
    "host",
    [b"api", b"api:9090", b"web:", b"10.0.0.1:80", b"[::1]:8080", b"[v1.x]", b"a%41", b"", b"a "],
)
async def test_a_valid_host_is_sent_on_as_it_came(host: bytes) -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
    await h.settle()
    assert h.up().data == b"GET / HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (host, IDENTITY)


@pytest.mark.parametrize(
    "url", [b"http://[::1/a", b"http://:80/a", b"http://web:x/", b"http://a%zz/"]
)
async def test_an_absolute_form_authority_that_is_no_host_gets_400(url: bytes) -> None:
    h = await _refused(b"GET %s HTTP/1.1\r\nHost: web\r\n\r\n" % url)
    assert h.down.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")


# --- request-line versions (RFC 9110 §2.5, §15.6.6) -----------------------------------------


@pytest.mark.parametrize("version", [b"1.2", b"1.9"])
@pytest.mark.parametrize("body", [False, True], ids=["GET", "POST"])
async def test_a_higher_minor_version_is_read_as_http11(version: bytes, body: bool) -> None:
    # llhttp refused HTTP/1.2 to 1.9 (400); RFC 9110 §2.5 has them processed as HTTP/1.1.
    h = Harness()
    h.send(
        _post(b"Content-Length: 3\r\n", body=b"abc", version=version)
        if body
        else b"GET / HTTP/%s\r\nHost: a\r\n\r\n" % version
    )
    await h.settle()
    sent = h.up().data
    assert sent.startswith(b"POST / HTTP/1.1\r\n" if body else b"GET / HTTP/1.1\r\n")
    h.respond(OK)
    assert h.down.take() == OK and not h.down.closed  # kept alive, as HTTP/1.1 is


@pytest.mark.parametrize("version", [b"2.0", b"3.0", b"0.9", b"2.1"])
@pytest.mark.parametrize("body", [False, True], ids=["GET", "POST"])
async def test_another_major_version_gets_505_and_reaches_nothing(
    version: bytes, body: bool
) -> None:
    # `HTTP/2.0` in an HTTP/1.1 request line was accepted and sent on as HTTP/1.1.
    h = await _refused(
        _post(b"Content-Length: 3\r\n", body=b"abc", version=version)
        if body
        else b"GET / HTTP/%s\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n" % version
    )
    assert h.down.data.startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n")
    assert b"x-smi-reason: version-not-supported\r\n" in h.down.data
    assert h.down.data.count(b"HTTP/1.1 ") == 1


# --- a 101 switches only to a protocol the request offered (RFC 9110 §7.8) ------------------


def _switching(upgrade: bytes) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: %s\r\n\r\n" % upgrade
    )


@pytest.mark.parametrize(
    ("asked", "chosen"),
    [(b"websocket", b"h2c"), (b"websocket", b"websocket, h2c"), (b"foo/2", b"foo/3")],
)
async def test_a_101_to_a_protocol_not_asked_for_gets_502_and_no_tunnel(
    asked: bytes, chosen: bytes
) -> None:
    # A switch to h2c, authorized as a WebSocket, was tunnelled: every further request on it
    # would have reached the app unauthorized.
    h = Harness()
    h.send(b"GET /ws HTTP/1.1\r\nHost: w\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n" % asked)
    await h.settle()
    h.respond(_switching(chosen) + b"PRI * HTTP/2.0\r\n\r\n")
    await h.settle()
    assert h.down.data.startswith(b"HTTP/1.1 502 Bad Gateway\r\n") and h.down.closed
    assert b"PRI" not in h.down.data and h.proxy.tunnel is None
    assert h.upstreams[0].closed


@pytest.mark.parametrize(
    ("asked", "chosen"),
    [(b"websocket", b"WebSocket"), (b"foo/2, websocket", b"websocket"), (b"foo", b"foo/2")],
)
async def test_a_101_to_a_protocol_asked_for_becomes_a_tunnel(asked: bytes, chosen: bytes) -> None:
    h = Harness()
    h.send(b"GET /ws HTTP/1.1\r\nHost: w\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n" % asked)
    await h.settle()
    h.respond(_switching(chosen) + b"HI")
    assert h.down.data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert h.down.data.endswith(b"\r\n\r\nHI") and h.proxy.tunnel is not None
