"""What the request path computes itself instead of asking a slower source must agree with
that source: the split pick with `pick_backend`, the reason phrase with httptools' `on_status`,
and the lower-cased header names with `bytes.lower` (whose tables stay bounded)."""

from __future__ import annotations

import random

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proxy_fakes import Harness

from proxy import http1, server, simplehead
from proxy.http1 import special_at
from proxy.routing import _Plan
from proxy.upstream import reason_of
from smi.compiler.ir import Split, SplitBackend
from smi.compiler.ir.decide import pick_backend
from smi.compiler.ir.index import IndexedSplit


def _split(weights: list[int]) -> IndexedSplit:
    backends = tuple(SplitBackend(f"ns/b{i}", w) for i, w in enumerate(weights))
    return IndexedSplit.of(Split(origin="ns/TrafficSplit/s", backends=backends))


def _edges(split: IndexedSplit) -> list[float]:
    """r at and around every boundary between backends, and outside [0, 1]."""
    out = [0.0, 1.0, -0.5, 1.5, 0.5, 1.0 - 2**-53]
    for c in split.cumulative:
        if split.total > 0:
            at = c / split.total
            out += [at, max(0.0, at - 1e-12), min(1.0, at + 1e-12)]
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12))
def test_the_compiled_pick_is_pick_backends(weights: list[int]) -> None:
    split = _split(weights)
    plan = _Plan(split)
    rng = random.Random(len(weights))
    for r in [*_edges(split), *(rng.random() for _ in range(50))]:
        assert plan.pick(r) == pick_backend(split, None, r), (weights, r)


@pytest.mark.parametrize(
    "weights",
    [
        [0, 0],  # no positive weight: no backend
        [2**60, 1, 2**60],  # totals floats cannot hold exactly: pick_backend decides
        [2**53, 1],
        [1, 0, 0],
        [0, 0, 7],
    ],
)
def test_edge_totals_pick_as_pick_backend(weights: list[int]) -> None:
    split = _split(weights)
    plan = _Plan(split)
    for r in _edges(split):
        assert plan.pick(r) == pick_backend(split, None, r), (weights, r)


def test_a_weight_zero_backend_is_never_picked() -> None:
    plan = _Plan(_split([0, 5, 0, 5, 0]))
    picks = {plan.pick(i / 1000) for i in range(1001)}
    assert picks == {"ns/b1", "ns/b3"}


def _on_status(line: bytes) -> bytes | None:
    """The reason httptools reports for `line`, None if it refuses the line."""

    class Collect:
        reason = b""

        def on_status(self, reason: bytes) -> None:
            self.reason += reason

    sink = Collect()
    try:
        httptools.HttpResponseParser(sink).feed_data(line + b"\r\ncontent-length: 0\r\n\r\n")
    except httptools.HttpParserError:
        return None
    return sink.reason


@pytest.mark.parametrize(
    "line",
    [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 200",
        b"HTTP/1.1 200 ",
        b"HTTP/1.1 200  two spaces",
        b"HTTP/1.0 404 Not Found",
        b"HTTP/1.1 599 \xe9t\xe9",
        b"ICE/1.0 200 OK",
        b"RTSP/1.0 200 OK",
    ],
)
def test_reason_of_reads_what_on_status_reports(line: bytes) -> None:
    assert _on_status(line) is not None
    assert reason_of(line) == _on_status(line)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"ICE/1.0", b"RTSP/1.0"]),
    st.integers(min_value=100, max_value=999),
    st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b),
)
def test_reason_of_any_accepted_status_line(version: bytes, code: int, rest: bytes) -> None:
    line = b"%s %d%s" % (version, code, rest)
    reported = _on_status(line)
    if reported is not None:  # (what httptools refuses never reaches reason_of)
        assert reason_of(line) == reported


def test_special_names_are_found_in_any_spelling() -> None:
    for spelled in (b"Content-Length", b"CONTENT-LENGTH", b"cOnNeCtIoN", b"Connection", b"TE"):
        line = spelled + b": x"
        assert special_at(line, 0, len(line)) == spelled.lower()
    assert special_at(b"Content-Lengtx: 1", 0, 17) == b""
    assert special_at(b"Content-Length-X: 1", 0, 19) == b""  # (the colon is not at 14)
    assert special_at(b"Te: x", 0, 2) == b""  # (the colon is past the line's end)
    for i in range(1000):  # names of a special length that are not special
        line = b"Cx%08d: v" % i  # 10 bytes, as `connection`
        assert special_at(line, 0, len(line)) == b""
    # In place: a line in the middle of a head, read where it starts.
    head = b"HTTP/1.1 200 OK\r\nCONNECTION: close\r\n"
    assert special_at(head, 17, len(head) - 2) == b"connection"


_TCHAR = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~"


def _in_case(name: bytes, upper: list[bool]) -> bytes:
    return bytes(c - 32 if up and 97 <= c <= 122 else c for c, up in zip(name, upper, strict=True))


_TOKENS = st.binary(min_size=1, max_size=20).map(
    lambda b: bytes(_TCHAR[c % len(_TCHAR)] for c in b)
)
_SPECIAL_SPELLINGS = st.sampled_from(sorted(http1.RESPONSE_SPECIAL)).flatmap(
    lambda n: st.lists(st.booleans(), min_size=len(n), max_size=len(n)).map(
        lambda u: _in_case(n, u)
    )
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(_TOKENS, _SPECIAL_SPELLINGS), st.binary(max_size=5))
def test_special_at_is_lower_and_a_set_lookup(name: bytes, tail: bytes) -> None:
    line = name + b":" + tail.replace(b"\r", b"").replace(b"\n", b"")
    want = name.lower() if name.lower() in http1.RESPONSE_SPECIAL else b""
    assert special_at(line, 0, len(line)) == want


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=30))
def test_lower_name_is_bytes_lower_whatever_shares_its_slot(names: list[bytes]) -> None:
    for name in names + names[::-1]:  # (again, once the table holds them or their rivals)
        assert simplehead.lower_name(name) == name.lower()


async def test_request_header_names_are_lower_cased_and_the_table_stays_bounded() -> None:
    h = Harness()
    long_name = b"X-" + b"A" * 100
    head = b"GET /a HTTP/1.1\r\nHost: web\r\nX-Team: blue\r\n%s: 1\r\n" % long_name
    head += b"".join(b"X-Filler-%d: v\r\n" % i for i in range(80))
    h.send(head + b"\r\n")
    await h.settle()
    _, _, headers = h.router.seen[-1]
    assert headers["x-team"] == "blue"
    assert headers[long_name.lower().decode()] == "1"
    assert long_name not in simplehead._SPELLED  # long names are not kept
    for i in range(8):  # many distinct names: the table stops growing
        h.respond(b"HTTP/1.1 204 No Content\r\n\r\n")
        head = b"GET /b HTTP/1.1\r\nHost: web\r\n"
        head += b"".join(b"N%d-%d: v\r\n" % (i, j) for j in range(90))
        h.send(head + b"\r\n")
        await h.settle()
    assert len(simplehead._SPELLED) == len(simplehead._NAMES) == simplehead._SLOTS
    assert dict(h.router.seen[-1][2])["n7-89"] == "v"


def test_plain_get_knows_the_usual_request_line() -> None:
    assert server._plain_get(b"GET /a?b=1 HTTP/1.1\r\nHost: web\r\n\r\n", b"/a?b=1")
    assert server._plain_get(b"GET / HTTP/1.1\r\n\r\n", b"/")
    assert not server._plain_get(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n", b"/")
    assert not server._plain_get(b"GET  / HTTP/1.1\r\nHost: web\r\n\r\n", b"/")
    assert not server._plain_get(b"GET / HTTP/1.1 \r\nHost: web\r\n\r\n", b"/")
    assert not server._plain_get(b"PUT / HTTP/1.1\r\nHost: web\r\n\r\n", b"/")
    assert not server._plain_get(b"GET http://web/ HTTP/1.1\r\n\r\n", b"http://web/")


class _Verdict:
    """The parser's reading of a head, taken where the proxy takes it (the parser forgets the
    message's persistence once it is complete)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.method = b""
        self.keep_alive = False

    def on_headers_complete(self) -> None:
        self.method = self.parser.get_method()
        self.keep_alive = self.parser.should_keep_alive()


@pytest.mark.parametrize(
    "head",
    [
        b"GET /a HTTP/1.1\r\nHost: web\r\n\r\n",
        b"GET /a HTTP/1.1\r\nhost: web\r\nAccept: */*\r\nX-A: 1\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: web\r\nConnection: keep-alive\r\n\r\n",
        b"GET /a HTTP/1.0\r\nHost: web\r\n\r\n",
        b"GET /a HTTP/1.0\r\nHost: web\r\nConnection: keep-alive\r\n\r\n",
        b"GET /a  HTTP/1.1\r\nHost: web\r\n\r\n",
        b"GET http://web/a HTTP/1.1\r\nHost: other\r\n\r\n",
        b"HEAD /a HTTP/1.1\r\nHost: web\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: web\r\nX-Smi-Source-Identity: spiffe://td/ns/x/sa/y\r\n\r\n",
    ],
)
async def test_a_get_is_read_as_httptools_reads_it(head: bytes) -> None:
    """Method and persistence as the parser says, and the head forwarded as it came only
    when nothing in it changes."""
    h = Harness()
    h.send(head)
    await h.settle()
    verdict = _Verdict()
    verdict.parser.feed_data(head)
    ex = h.proxy.queue[0]
    assert ex.method == verdict.method
    assert ex.keep_alive == verdict.keep_alive
    sent = h.up().data
    as_came = head[:-2] + h.router.forward.extra + b"\r\n"
    line = head[: head.find(b"\r\n")]
    plain = line in (b"GET /a HTTP/1.1", b"HEAD /a HTTP/1.1") and b"onnection" not in head
    assert (sent == as_came) == (plain and b"Source-Identity" not in head)
    assert b"spiffe://td/ns/x/sa/y" not in sent


@pytest.mark.parametrize("before", [b"\r\n", b"\n", b"\r\n\r\n"])
async def test_empty_lines_before_a_response_are_skipped_as_httptools_skips_them(
    before: bytes,
) -> None:
    h = Harness()
    h.send(b"GET /a HTTP/1.1\r\nHost: web\r\n\r\n")
    await h.settle()
    h.respond(before + b"HTTP/1.1 404 Gone Fishing\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhi")
    out = h.down.take()
    assert out.startswith(b"HTTP/1.1 404 Gone Fishing\r\n")
    assert out.count(b"HTTP/1.1") == 1
    assert b"\r\nX-A: 1\r\n" in out
    assert out.endswith(b"\r\n\r\nhi")


@pytest.mark.parametrize(
    ("status", "fields", "relayed"),
    [
        # hop-by-hop lines first, between others, last and next to each other
        (
            b"200 OK",
            [b"Connection: keep-alive", b"A: 1", b"Keep-Alive: timeout=5", b"B: 2"],
            [b"A: 1", b"B: 2"],
        ),
        (
            b"200 OK",
            [b"A: 1", b"TE: trailers", b"Trailer: x", b"B: 2", b"Connection: keep-alive"],
            [b"A: 1", b"B: 2"],
        ),
        (b"200 OK", [b"Proxy-Connection: x", b"Connection: close"], []),
        # a header a Connection value names goes too
        (b"200 OK", [b"X-Hop: 1", b"A: 1", b"Connection: X-Hop"], [b"A: 1"]),
        # no Content-Length where there is no body
        (b"204 No Content", [b"A: 1", b"Content-Length: 0", b"B: 2"], [b"A: 1", b"B: 2"]),
    ],
)
async def test_the_lines_between_dropped_ones_go_on_as_they_came(
    status: bytes, fields: list[bytes], relayed: list[bytes]
) -> None:
    h = Harness()
    h.send(b"GET /a HTTP/1.1\r\nHost: web\r\n\r\n")
    await h.settle()
    has_body = not status.startswith(b"204")
    length = [b"Content-Length: 2"] if has_body else []
    h.respond(b"HTTP/1.1 %s\r\n%s\r\n\r\n" % (status, b"\r\n".join(fields + length)))
    if has_body:
        h.respond(b"hi")
    out = h.down.take()
    head = out[: out.index(b"\r\n\r\n")].split(b"\r\n")
    assert head[0] == b"HTTP/1.1 " + status
    assert head[1:] == relayed + length
