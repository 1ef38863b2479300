"""`proxy.simplehead` reads a request head as httptools (llhttp) reads it, or leaves it to
httptools: checked on generated heads, valid and broken, and through the proxy itself (the same
bytes reach the app and the client either way)."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

import httptools
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from proxy_fakes import Harness

from proxy import native, server, simplehead, upstream
from proxy.exchange import Exchange, Limits
from proxy.http1 import HOP_BY_HOP

LIMITS = Limits()


class _Reading:
    """What httptools reports of a request (or, with `response`, of a response), and whether
    it reported anything else. Method, status and persistence are taken where the proxy takes
    them, when the head is complete (the parser forgets persistence at the message's end)."""

    def __init__(self, data: bytes, *, response: bool = False) -> None:
        self.parser: Any = (
            httptools.HttpResponseParser(self) if response else httptools.HttpRequestParser(self)
        )
        self.response = response
        self.url = self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.heads = self.messages = 0
        self.body = b""
        self.method = b""
        self.status = 0
        self.keep_alive = False
        self.version = ""
        self.error: Exception | None = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:  # (HttpParserUpgrade is one too)
            self.error = exc

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.heads += 1
        if self.response:
            self.status = self.parser.get_status_code()
        else:
            self.method = self.parser.get_method()
        self.keep_alive = self.parser.should_keep_alive()
        self.version = self.parser.get_http_version()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.messages += 1


def _read(data: bytes) -> Exchange | None:
    ex = Exchange()
    if simplehead.read_request(data, ex, LIMITS.max_headers, LIMITS.max_header_bytes):
        return ex
    return None


def _agrees(data: bytes) -> Exchange | None:
    """Read `data`; if simplehead reads it, httptools must read exactly the same: one whole
    HTTP/1.1 message with no body, persistent, the same method, target and header pairs."""
    ex = _read(data)
    if ex is None:
        return None
    reading = _Reading(data)
    assert reading.error is None, (data, reading.error)
    assert (reading.heads, reading.messages, reading.body) == (1, 1, b""), data
    fields_at = ex.fields_at
    pairs = ex.pairs()
    assert (reading.method, reading.url, reading.headers) == (ex.method, ex.url, pairs)
    assert reading.keep_alive and reading.version == "1.1"
    # What proxy.server relies on: forwarded as it came, with one Host and nothing to drop.
    assert ex.raw_head == data[:-2] and ex.done
    hosts = [value for name, value in pairs if name == b"host"]
    assert hosts == [ex.host]
    assert not any(name in HOP_BY_HOP or name == b"content-length" for name, _ in pairs)
    assert ex.header_bytes == len(ex.url) + sum(len(n) + len(v) + 4 for n, v in pairs)
    # What the inbound router reads of it without the pairs: every name's bit is set, and the
    # pairs of some names are those pairs.
    for name, _ in pairs:
        assert ex.name_bits & simplehead.name_bits([name])
    raw = ex.raw_head
    for names in ({name for name, _ in pairs[::2]}, {b"host", b"x-none"}, set()):
        chosen = tuple(pair for pair in pairs if pair[0] in names)
        assert simplehead.named_pairs(raw, fields_at, frozenset(names)) == chosen
    return ex


# --- generated heads ----------------------------------------------------------------------------

_METHODS = st.sampled_from(
    [
        *(b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT"),
        *(b"TRACE", b"PROPFIND", b"get", b"GETT", b"G", b"", b"GET\t", b"\x00GET"),
    ]
)
_TARGET_BYTES = st.sampled_from(
    list(b"/aZ09-._~!$&'()*+,;=:@?%") + list(b'#"<>\\^`{|} \t\x00\x7f\x80\xff\r\n')
)
_TARGETS = st.one_of(
    st.lists(_TARGET_BYTES, max_size=20).map(lambda bs: b"/" + bytes(bs)),
    st.lists(_TARGET_BYTES, max_size=20).map(bytes),
    st.sampled_from([b"*", b"http://web/a", b"//a", b"/a?b=1&c=%20"]),
)
_VERSIONS = st.sampled_from(
    [b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.10", b"http/1.1", b"HTTP/2.0", b"HTTP/1.1 "]
)
_NAMES = st.one_of(
    st.sampled_from(
        [
            *(b"Host", b"host", b"HOST", b"X-Team", b"Accept", b"User-Agent", b"Content-Length"),
            *(b"Transfer-Encoding", b"Connection", b"Upgrade", b"Expect", b"TE", b"Keep-Alive"),
            *(b"X-Smi-Source-Identity", b"x_smi_source_identity", b"Proxy-Authorization"),
            *(b"Host ", b" Host", b"X Team", b"X{A}", b"", b"X-\x00", b"\xc3\xa9"),
        ]
    ),
    st.text("abcXYZ019-_!#$%&'*+.^`|~", min_size=1, max_size=10).map(str.encode),
)
_VALUE_BYTES = st.one_of(
    st.sampled_from(list(b'azAZ09 \t/,;=:.-"')),
    st.integers(0, 255),
)
_VALUES = st.one_of(
    st.sampled_from([b"web", b"web:8080", b"*/*", b"", b" ", b"a, b", b"close", b"0", b"5"]),
    st.lists(_VALUE_BYTES, max_size=16).map(bytes),
)
_OWS = st.sampled_from([b"", b" ", b"  ", b"\t", b" \t"])
_EOL = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"])


@st.composite
def heads(draw: Any, *, broken: bool) -> bytes:
    """A request head. `broken` heads draw from everything above; the others only from what a
    usual client sends (and must be read by simplehead when they have one Host)."""
    if broken:
        line = draw(_METHODS) + draw(st.sampled_from([b" ", b"  ", b"\t"])) + draw(_TARGETS)
        line += draw(st.sampled_from([b" ", b"  "])) + draw(_VERSIONS)
        fields = draw(st.lists(st.tuples(_NAMES, _OWS, _VALUES, _OWS, _EOL), max_size=6))
    else:
        method = draw(st.sampled_from(sorted(simplehead.METHODS)))
        path = draw(st.lists(st.sampled_from(list(b"aZ09-._~!$&'()*+,;=:@/?%")), max_size=20))
        line = method + b" /" + bytes(path) + b" HTTP/1.1"
        name = st.text("abcXYZ019-!#$%&'*+.^`|~", min_size=1, max_size=10).map(str.encode)
        value = st.lists(st.sampled_from([*b'azAZ09 \t/,;=:.-"', 0x80, 0xFF]), max_size=16)
        fields = [(b"Host", b" ", b"web", b"", b"\r\n")]
        extra = st.tuples(name, _OWS, value.map(bytes), _OWS, st.just(b"\r\n"))
        fields += draw(st.lists(extra, max_size=6))
    head = line + b"\r\n"
    for name, before, value, after, eol in fields:
        head += name + b":" + before + value + after + eol
    return head + b"\r\n"


_SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(heads(broken=True))
@example(b"GET /a HTTP/1.1\r\nHost: web\r\nHost: web\r\n\r\n")
@example(b"GET /a HTTP/1.1\r\nHost: web\r\nX-A: \x7f\r\n\r\n")
@example(b"GET /a#b HTTP/1.1\r\nHost: web\r\n\r\n")
def test_what_it_reads_httptools_reads_alike(head: bytes) -> None:
    _agrees(head)


@_SETTINGS
@given(heads(broken=False))
def test_the_usual_heads_are_read(head: bytes) -> None:
    ex = _agrees(head)
    names = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n")[1:] if line]
    plain = not any(n in HOP_BY_HOP or n == b"content-length" for n in names)
    assert (ex is not None) == (plain and names.count(b"host") == 1)


@_SETTINGS
@given(heads(broken=False), st.integers(0, 200), st.integers(0, 255), st.booleans())
def test_a_byte_changed_or_added_anywhere(head: bytes, where: int, byte: int, add: bool) -> None:
    at = where % len(head)
    head = head[:at] + bytes([byte]) + head[at + (0 if add else 1) :]
    _agrees(head)


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: web\r\n\r\n",
        b"GET /a?b=1&c=%2F HTTP/1.1\r\nhost:web\r\nAccept: */*\r\nX-Empty:\r\n\r\n",
        b"DELETE /items/7 HTTP/1.1\r\nHost: web:8080\r\nX-Team:  blue \t\r\n\r\n",
        b"OPTIONS /a HTTP/1.1\r\nHost: web\r\nX-Latin: caf\xe9\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: web\r\n\r\n",  # no body: no framing header
    ],
)
def test_plain_heads_are_read_here(head: bytes) -> None:
    assert _agrees(head) is not None


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # two (400 in proxy.server)
        b"GET / HTTP/1.0\r\nHost: web\r\n\r\n",
        b"GET http://web/ HTTP/1.1\r\nHost: web\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: web\r\n\r\n",
        b"CONNECT web:443 HTTP/1.1\r\nHost: web\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: web\r\n\r\n",
        b"GET /a#f HTTP/1.1\r\nHost: web\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web\r\nConnection: keep-alive\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web\r\nx_smi_source_identity: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : web\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web\nX-A: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web\r\n\r\nGET / HTTP/1.1\r\nHost: web\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web\r\n\r",
        b"GET / HTTP/1.1\r\nHost: web\r\n",
    ],
)
def test_the_rest_is_left_to_httptools(head: bytes) -> None:
    assert _read(head) is None


def _slot(name: bytes) -> int:
    h = 0
    for c in name:
        h = simplehead._hash_step(h, c)
    return h & (simplehead._SLOTS - 1)


def test_names_that_share_a_slot_keep_what_they_are() -> None:
    """The name table is indexed by a hash: a name that takes another's slot must not take
    its kind (a `Connection` read as a plain header, or a plain one as `Host`)."""
    for special in (b"Connection", b"Host", b"Content-Length", b"X_Smi_Source-Identity"):
        # (Of its length: a comparison of lengths alone would not tell them apart.)
        width = len(special) - 1
        rival = next(
            n for i in range(10**width) if _slot(n := b"X%0*d" % (width, i)) == _slot(special)
        )
        for _ in range(2):  # (each in turn takes the slot from the other)
            plain = b"GET / HTTP/1.1\r\nHost: web\r\n%s: 1\r\n\r\n" % rival
            ex = Exchange()
            assert simplehead.read_request(plain, ex, 100, 32 * 1024)
            assert ex.host == b"web"
            assert ex.pairs()[-1] == (rival.lower(), b"1")
            if special == b"Host":
                head = b"GET / HTTP/1.1\r\n%s: other\r\n\r\n" % special
                ex = Exchange()
                assert simplehead.read_request(head, ex, 100, 32 * 1024)
                assert ex.host == b"other"
            else:  # (its request is left to httptools)
                head = b"GET / HTTP/1.1\r\nHost: web\r\n%s: 1\r\n\r\n" % special
                assert not simplehead.read_request(head, Exchange(), 100, 32 * 1024)


def test_the_header_limits_are_left_to_httptools_to_refuse() -> None:
    head = b"GET / HTTP/1.1\r\nHost: web\r\n" + b"X-A: 1\r\n" * 99 + b"\r\n"
    ex = Exchange()
    assert simplehead.read_request(head, ex, 100, 32 * 1024)
    assert not simplehead.read_request(head, Exchange(), 99, 32 * 1024)
    assert not simplehead.read_request(head, Exchange(), 100, ex.header_bytes - 1)
    assert simplehead.read_request(head, Exchange(), 100, ex.header_bytes)


def test_a_head_of_many_lines_is_given_up_at_the_limit_not_at_its_end() -> None:
    """One read may hold some 64,000 four-byte lines: reading stops where the limits are
    passed, as httptools' 431 does, not at the head's end (`header_bytes` says where)."""
    head = b"GET / HTTP/1.1\r\nHost: web\r\n" + b"a:\r\n" * 64_000 + b"\r\n"
    # (As proxy.server counts: the target's 1 byte, `Host: web` 11, each `a:` line 5.)
    ex = Exchange()
    assert not simplehead.read_request(head, ex, 100, 32 * 1024)
    assert ex.header_bytes == 1 + 11 + 100 * 5  # the 101st line, past 100
    ex = Exchange()
    assert not simplehead.read_request(head, ex, 10**6, 1000)
    assert 1000 < ex.header_bytes <= 1000 + 5  # the first line past 1000 bytes


# --- through the proxy: the same bytes either way -----------------------------------------------


async def _through(head: bytes, *, simple: bool) -> tuple[Any, ...]:
    """What reaches the app and the client when `head` comes three times (each answered), and
    what the router saw."""
    read = mock.Mock(wraps=server.read_request if simple else _never)
    with mock.patch.object(server, "read_request", read):
        h = Harness()
        h.send(head)
        await h.settle()
        sent: list[bytes] = []
        for _ in range(2):
            if h.upstreams and h.proxy.queue:
                sent.append(h.up().take())
                h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await h.settle()
            h.send(head)
            await h.settle()
        assert read.call_count == 3  # (the patch took: the proxy asked it each time)
        stats = h.metrics.inbound
        counted = (stats.requests, stats.responses, stats.errors)
        return sent, h.down.take(), h.router.seen, h.proxy.deadline_kind, h.down.closed, counted


def _never(*args: Any) -> bool:
    return False


async def _both(head: bytes) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    return await _through(head, simple=True), await _through(head, simple=False)


@pytest.mark.skipif(
    native.compiled(),
    reason="compiled code calls read_request directly (not through the module): run by the "
    "pure-Python pass of `make test`",
)
@_SETTINGS
@given(heads(broken=False), st.sampled_from([b"/", b"/deny/", b"/a/"]))
def test_the_proxy_sends_the_same_bytes_either_way(head: bytes, prefix: bytes) -> None:
    head = head.replace(b" /", b" " + prefix, 1)  # /deny: answered by the proxy (403)
    simple, parsed = asyncio.run(_both(head))
    assert simple == parsed


# --- responses ----------------------------------------------------------------------------------


def _response_agrees(data: bytes) -> bool:
    """Read the response `data`; if simplehead reads it, httptools must read exactly one
    HTTP/1.1 message from all of it: the head where simplehead says it ends, its status, the
    rest as its body, and the same persistence."""
    end, keep_alive, fields, drop, drop_end = simplehead.read_response(data, 64 * 1024)
    if end < 0:
        return False
    reading = _Reading(data, response=True)
    assert reading.error is None, (data, reading.error)
    assert (reading.heads, reading.messages, reading.version) == (1, 1, "1.1"), data
    assert reading.status == int(data[9:12]) and 200 <= reading.status < 600
    assert reading.body == data[end + 4 :]
    assert reading.keep_alive == keep_alive, data
    assert data[end : end + 4] == b"\r\n\r\n" and b"\r\n\r\n" not in data[:end]
    lengths = [value for name, value in reading.headers if name == b"content-length"]
    assert lengths == [str(len(reading.body)).encode()], data
    # Where the header lines start, and the one Connection line (what the proxy drops).
    assert data.find(b"\r\n") == fields - 2 and data[13 : fields - 2] == reading.reason
    connection = [pair for pair in reading.headers if pair[0] == b"connection"]
    if drop < 0:
        assert connection == [] and drop_end == -1
    else:
        line = data[drop:drop_end]
        assert len(connection) == 1 and fields <= drop < drop_end <= end + 2
        assert line.lower().startswith(b"connection:") and line.endswith(b"\r\n")
        assert data[drop - 2 : drop] == b"\r\n"
    return True


_STATUS_LINES = st.one_of(
    st.tuples(
        st.integers(100, 999), st.sampled_from([b" OK", b"", b" ", b" Not Found", b" \xe9"])
    ).map(lambda t: b"HTTP/1.1 %d%s" % t),
    st.sampled_from(
        [
            *(b"HTTP/1.0 200 OK", b"HTTP/1.1 20 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1  200 OK"),
            *(b"http/1.1 200 OK", b"HTTP/1.1 200 O\x7fK", b"HTTP/1.1 200 O\rK", b"HTTP/1.1 +20 OK"),
        ]
    ),
)
_RESPONSE_NAMES = st.sampled_from(
    [
        *(b"Content-Length", b"content-length", b"Content-Type", b"Date", b"Server"),
        *(b"Connection", b"Transfer-Encoding", b"Keep-Alive", b"Upgrade", b"Trailer"),
        *(b"Proxy-Connection", b"Content-Length ", b"X{A}", b"", b"Set-Cookie"),
    ]
)
_RESPONSE_VALUES = st.one_of(
    st.sampled_from(
        [b"keep-alive", b"Keep-Alive", b"close", b"upgrade", b"chunked", b"text/plain"]
    ),
    st.sampled_from([b"0", b"5", b"05", b"+5", b"5 ", b"5,5", b"", b"99999999999999999999"]),
    st.lists(_VALUE_BYTES, max_size=12).map(bytes),
)


@st.composite
def responses(draw: Any) -> bytes:
    line = draw(_STATUS_LINES)
    body = draw(st.binary(max_size=12))
    fields = draw(st.lists(st.tuples(_RESPONSE_NAMES, _OWS, _RESPONSE_VALUES, _EOL), max_size=5))
    if draw(st.booleans()):
        fields.insert(
            draw(st.integers(0, len(fields))), (b"Content-Length", b" ", b"%d" % len(body), b"\r\n")
        )
    head = line + b"\r\n" + b"".join(n + b":" + ows + v + eol for n, ows, v, eol in fields)
    return head + b"\r\n" + body + draw(st.sampled_from([b"", b"", b"x", b"HTTP/1.1 200 OK\r\n"]))


@_SETTINGS
@given(responses())
@example(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")
@example(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\n\r\nok")
@example(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")
@example(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
def test_what_it_reads_of_a_response_httptools_reads_alike(data: bytes) -> None:
    _response_agrees(data)


@_SETTINGS
@given(responses(), st.integers(0, 200), st.integers(0, 255), st.booleans())
def test_a_response_with_a_byte_changed_or_added(
    data: bytes, where: int, byte: int, add: bool
) -> None:
    at = where % len(data)
    _response_agrees(data[:at] + bytes([byte]) + data[at + (0 if add else 1) :])


@pytest.mark.parametrize(
    ("data", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
        (b"HTTP/1.1 404 Not Found\r\ncontent-length:0\r\nServer: web\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n.", True),
        (
            b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            False,
        ),
        (b"HTTP/1.1 200\r\nContent-Length: 0\r\nX-Latin: caf\xe9\r\n\r\n", True),
    ],
)
def test_plain_responses_are_read_here(data: bytes, keep_alive: bool) -> None:
    assert _response_agrees(data)
    assert simplehead.read_response(data, 64 * 1024)[1] is keep_alive


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\n\r\nok",  # to the close
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok",  # the rest is to come
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nok",  # and more than that
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, x-a\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: +0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0 \r\n\r\n",
        b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_the_rest_of_the_responses_is_left_to_httptools(data: bytes) -> None:
    assert simplehead.read_response(data, 64 * 1024) == simplehead.NOT_READ


def test_a_response_head_over_the_limit_is_left_to_httptools() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert simplehead.read_response(data, len(data) - 4)[:2] == (len(data) - 4, True)
    assert simplehead.read_response(data, len(data) - 5) == simplehead.NOT_READ


# Requests the responses answer: the usual one (a plain response then goes on as it came),
# and those whose responses the proxy must change (`connection: close`, or `keep-alive` for
# HTTP/1.0).
REQUESTS = (
    b"GET / HTTP/1.1\r\nHost: web\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: web\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: web\r\nConnection: keep-alive\r\n\r\n",
)


async def _relayed(
    responses_: list[bytes], *, simple: bool, request: bytes = REQUESTS[0]
) -> tuple[Any, ...]:
    """What the client gets, and what becomes of the upstream connection, when the app answers
    two requests with these responses (each in one read)."""
    read = mock.Mock(wraps=upstream.read_response if simple else _never_response)
    with mock.patch.object(upstream, "read_response", read):
        h = Harness()
        for data in responses_:
            if h.down.closed:
                break  # (the first response ended the connection)
            h.send(request)
            await h.settle()
            if h.upstreams and h.proxy.queue:
                h.respond(data)
                await h.settle()
        assert read.call_count >= 1  # (the patch took)
        stats = h.metrics.inbound
        kept = [conn.transport.closed for conn in h.upstreams]  # type: ignore[union-attr]
        return h.down.take(), h.down.closed, kept, stats.responses, stats.errors


RESPONSE_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.skipif(
    native.compiled(),
    reason="compiled code calls read_response directly (not through the module): run by the "
    "pure-Python pass of `make test`",
)
async def test_bytes_after_a_whole_response_in_its_read_retire_the_connection() -> None:
    """The app sent the start of a second response with the first: no request asked for it.
    The first goes out whole; the connection is closed, not pooled (where the next request's
    response was read as those bytes' continuation, or the simple path read past them)."""
    for simple in (True, False):
        stray = RESPONSE_OK + b"HTTP/1.1 200 OK\r\n"
        out, closed, upstream_closed, responses_, errors = await _relayed(
            [stray, RESPONSE_OK], simple=simple
        )
        assert out == RESPONSE_OK * 2 and not closed
        assert upstream_closed == [True, False] and responses_ == {200: 2} and errors == {}


def _never_response(*args: Any) -> tuple[int, bool, int, int, int]:
    return simplehead.NOT_READ


@pytest.mark.skipif(
    native.compiled(),
    reason="compiled code calls read_response directly (not through the module): run by the "
    "pure-Python pass of `make test`",
)
@_SETTINGS
@given(st.lists(responses(), min_size=1, max_size=2), st.sampled_from(REQUESTS))
@example(  # stray bytes after a whole response, in its read (found by this test)
    [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n", RESPONSE_OK], REQUESTS[0]
)
def test_the_client_gets_the_same_bytes_either_way(responses_: list[bytes], request: bytes) -> None:
    async def both() -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return (
            await _relayed(responses_, simple=True, request=request),
            await _relayed(responses_, simple=False, request=request),
        )

    simple, parsed = asyncio.run(both())
    assert simple == parsed
