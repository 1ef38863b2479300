"""The downstream HTTP/1.1 connection: parse requests, route each, stream it to an upstream.

One `HttpProxy` per accepted connection, on both listeners; the `Router` it is given decides
what happens to a request (inbound: authorize and forward to the app; outbound: pick a backend
and forward over mTLS). The protocol itself only moves bytes:

- requests are parsed with httptools (a read that is one whole plain head, the usual request,
  by `proxy.simplehead`); every request is an `Exchange`; pipelined requests queue
  and are answered in order, one in flight at a time (reading pauses while one waits);
- bodies stream both ways without being collected: Content-Length bodies as they are, chunked
  bodies re-chunked; reading pauses while the other side's write buffer is above high water;
- `Expect: 100-continue` is answered by the proxy once the request is authorized and an
  upstream is ready; `Upgrade` is forwarded after authorization and, on 101, both sides become
  a byte tunnel (authorized again whenever the policy changes: proxy.tunnels);
- limits: header bytes and count (431), pipeline depth, malformed requests (400, then close);
  deadlines are stored on the connection and enforced by `ServerState`'s ticker: a slow request
  head or body (408), an upstream that does not answer (504), an idle keep-alive connection or
  tunnel, and a peer that takes none of what back-pressure holds for it (proxy.relay);
- every response is counted, also those the proxy answers before routing (whose requests count
  as `not-reached`) and those cut off (`status_code="0"`: see `connection_lost`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast

import httptools

from proxy import http1
from proxy.exchange import Exchange, Forward, Limits, Router
from proxy.flow import CONNECTING, HIGH_WATER, LOW_WATER, PEER_BUSY, PIPELINE, UPGRADE, FlowControl
from proxy.http1 import HOP_BY_HOP, Reply, local_reply
from proxy.lists import one_slot
from proxy.metrics import ABORTED, NOT_REACHED
from proxy.relay import (
    BODY,
    FAR,
    HEAD,
    IDLE,
    LINGER,
    LINGER_SECONDS,
    NONE,
    RESPONSE,
    STREAM,
    TUNNEL,
    ResponseRelay,
)
from proxy.simplehead import lower_name, read_request
from proxy.state import ServerState
from proxy.tlslayer import no_write
from proxy.upstream import ConnectionPool, UpstreamConnection, UpstreamError

if TYPE_CHECKING:
    from proxy.accesslog import AccessLog

__all__ = ["Exchange", "Forward", "HttpProxy", "Limits", "Router"]

# The clock of the response latency, read twice per request: a Final name is a C static in the
# compiled module, where an imported one is a lookup in the module's dict at every call.
monotonic: Final = time.monotonic

DISCARD_LIMIT: Final = 64 * 1024  # bytes of a refused request body read (and dropped) to keep alive
# The largest Content-Length passed on: an app that reads it as a signed 64-bit number would
# see a larger one as negative (nginx refuses the same values).
MAX_CONTENT_LENGTH: Final = 2**63 - 1


_HOST: Final = frozenset({b"host"})
# Sent with `Upgrade: h2c` (RFC 7540 §3.2): meaningless without the upgrade it goes with.
_HTTP2_SETTINGS: Final = frozenset({b"http2-settings"})


_GET: Final = b"GET"


def _plain_get(raw: bytes, url: bytes) -> bool:
    """Whether the head `raw` (as received, one whole head) starts `GET <url> HTTP/1.1` with
    single spaces and an origin-form target: index comparisons, no method call. (httptools
    parsed this head: `url` follows `GET ` only if the method is GET.)"""
    n = len(url)
    return (
        raw[0] == 71  # G
        and raw[1] == 69  # E
        and raw[2] == 84  # T
        and raw[3] == 32
        and n > 0
        and url[0] == 47  # /
        and raw[4 + n : 15 + n] == b" HTTP/1.1\r\n"
    )


def _asterisk(ex: Exchange) -> bool:
    """`OPTIONS *`, the one request whose target is neither a path nor a URL."""
    return ex.url == b"*" and ex.method == b"OPTIONS"


def _parser(protocol: HttpProxy) -> httptools.HttpRequestParser:
    """A request parser that reads any `HTTP/d.d` version, for `_version_ok` to judge:
    llhttp refuses `HTTP/1.2` to `HTTP/1.9` (400), where RFC 9110 §2.5 reads them as 1.1.
    (Its other leniencies stay off; this one changes nothing but the version check.)"""
    parser = httptools.HttpRequestParser(protocol)
    parser.set_dangerous_leniencies(lenient_version=True)
    return parser


class _LimitExceeded(Exception):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply


# (What `on_message_begin` stops the parser with once the connection is closing: never sent.)
_CLOSED: Final = local_reply(400, "connection-closed", close=True)


class HttpProxy(ResponseRelay, asyncio.BaseProtocol):
    def __init__(
        self,
        *,
        router: Router,
        pool: ConnectionPool,
        state: ServerState,
        limits: Limits,
        direction: str = "inbound",
        access_log: AccessLog | None = None,
    ) -> None:
        self.router = router
        self.direction = direction
        self.access_log = access_log
        self.pool = pool
        self.state = state
        self.limits = limits
        self.stats = router.stats
        self.max_header_bytes = limits.max_header_bytes
        self.max_headers = limits.max_headers
        self.header_timeout = limits.header_timeout
        self.body_timeout = limits.body_timeout
        self.response_timeout = limits.response_timeout
        self.idle_timeout = limits.idle_timeout
        self.tunnel_idle_timeout = limits.tunnel_idle_timeout
        # Per-connection state
        self.transport: asyncio.Transport | None = None
        self.send: Callable[[bytes], object] = no_write  # (see UpstreamConnection.send)
        self.flow: FlowControl | None = None
        self.parser = _parser(self)
        self.peer: Any = None
        self.out: list[bytes] = one_slot()  # (proxy.lists)
        # (A list: pipelining is bounded by `max_pipeline`, and compiled code appends to and
        # pops from a list directly, where a deque's methods are looked up by name.)
        self.queue: list[Exchange] = one_slot()
        self.parsing: Exchange | None = None
        self.upstream: UpstreamConnection | None = None  # bound to queue[0]
        self.write_paused = False
        self.broken: Reply | None = None  # parse error waiting for earlier responses
        # This side closes the connection (`_close_when_flushed`): nothing more it holds is
        # read, so a request pipelined behind the answer that said `close` never starts.
        self.closed = False
        self.upgraded = False
        self.tunnel: UpstreamConnection | None = None
        self.tunnel_pending: list[bytes] = []
        self.tunnel_request: Exchange | None = None
        self.tunnel_at = 0.0
        self.deadline = FAR
        self.deadline_kind = NONE
        self.in_head = False
        self.head_bytes = 0
        self.begun = 0  # messages begun in the current read
        # The current read when it is exactly one request head (the usual request): then the
        # head can be forwarded as it came (see on_headers_complete).
        self.raw: bytes | None = None
        self._advancing = False
        self.stall_at = 0.0  # back-pressure (proxy.relay)
        self.stall_bytes = 0

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        self.send = transport.write
        self.flow = FlowControl(transport)
        transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        self.peer = self.router.peer_of(transport)
        self.state.opened(self)
        self.stats.opened()
        self._set_deadline(IDLE, self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.closed(self)
        self.stats.closed()
        self.transport = None
        self.send = no_write
        queue = self.queue
        if queue and queue[0].started:
            # A request routed (so counted) whose response never ended: cut off by the proxy
            # (a timeout, an upstream gone mid-body) or by the client going away. (Answered
            # exchanges leave the queue in `_finish`; timed-out ones with their local reply.)
            ex = queue[0]
            self._ended(ex, ABORTED, "aborted", (monotonic() - ex.started_at) * 1000.0)
        for conn in (self.upstream, self.tunnel):
            if conn is not None:
                conn.abort()  # a half-done exchange cannot be reused
        self.upstream = self.tunnel = None
        self.queue.clear()

    def _done_reading(self) -> bool:
        """Whether the request stream ended (a failure answered, or a closing answer sent).
        A method, not a test in `data_received`: there mypyc would take `self.broken` to stay
        None for the rest of the call, and a callback that sets it (`_fail`) then made the
        compiled code's next read of it a TypeError."""
        return self.broken is not None or self.closed

    def data_received(self, data: bytes) -> None:
        if self.upgraded:
            self._tunnel_in(data)
            return
        if self._done_reading():
            return
        at_boundary = self.parsing is None
        head_was_open = self.in_head and not at_boundary
        self.begun = 0
        if not at_boundary:
            self.raw = None
        elif self._read_simple(data):
            return
        if not (at_boundary or self.in_head):
            self.head_bytes += len(data)  # a body's framing: checked below
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgraded = True
            self.tunnel_pending.append(data[exc.args[0] :])
            self.flow.pause(UPGRADE)  # type: ignore[union-attr]
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _LimitExceeded):
                if self.broken is None:
                    self._fail(cause.reply)
            else:
                raise
        except httptools.HttpParserError:
            self._fail(local_reply(400, "malformed-request", close=True))
        if self.parsing is not None and self.broken is None:
            self._check_open(len(data) if head_was_open or (at_boundary and self.begun == 1) else 0)
        self.flush()

    def _check_open(self, whole: int) -> None:
        """After a read that left a message open: bound what httptools holds of it unseen.
        `whole` is the read's size if it held nothing but the open head, else 0."""
        if self.in_head:
            self._count_head(whole)
        elif self.head_bytes > self.limits.max_header_bytes:
            # After the head, reads that gave no body piece (on_body resets the count) hold
            # only a chunked body's framing: chunk-size lines and the trailer section, whose
            # fields httptools keeps whole until they end. Bounded like the head, give or
            # take one read.
            self._fail(local_reply(431, "header-too-large", close=True))

    def _read_simple(self, data: bytes) -> bool:
        """At a message boundary: read the usual request (one whole plain head, the whole
        read) without httptools, which stays at the boundary (proxy.simplehead): True.
        Otherwise note in `raw` whether this read is exactly one request head, for httptools'
        reading (then the head can be forwarded as it came: see on_headers_complete)."""
        if len(self.queue) < self.limits.max_pipeline:
            ex = Exchange(simple=True)
            if read_request(data, ex, self.max_headers, self.max_header_bytes):
                self.raw = None
                self._queue(ex)
                self.flush()
                return True
        # (Not a read that starts with the empty lines httptools skips before a request line:
        # its head would be forwarded, or cut into lines, from the wrong offset.)
        whole = data.find(b"\r\n\r\n") == len(data) - 4 and data[0] != 13 and data[0] != 10
        self.raw = data if whole else None
        return False

    def _count_head(self, size: int) -> None:
        # httptools reports a header only once it is complete, so a never-ending header would
        # grow inside the parser unseen. Count the reads known to hold nothing but the open
        # head: those that continue it, and one that starts it at a message boundary. (A head
        # that starts after other messages in one read escapes for that read only.)
        self.head_bytes += size
        if self.head_bytes > self.limits.max_header_bytes:
            self._fail(local_reply(431, "header-too-large", close=True))

    def eof_received(self) -> bool | None:
        # A half-closed client still reads its responses; close when they are written. (Over
        # the mesh's TLS too: proxy.tlslayer stays open to write after the peer's close_notify.)
        transport = self.transport
        if self.parsing is not None and not self.in_head and transport is not None:
            # The end came in the middle of a body (before its Content-Length, or its last
            # chunk): that request can never be completed (RFC 9112 §8). Its upstream
            # connection, holding part of it, is aborted at once rather than left waiting for
            # the rest until the body timeout; the client, if it still reads, gets a 400.
            self._fail(local_reply(400, "incomplete-request", close=True))
            self.flush()
            return True
        if not self.queue or transport is None:
            return None
        for ex in self.queue:
            ex.keep_alive = False
        return True

    def pause_writing(self) -> None:
        if not self._backpressured():
            self._hold()
        self.write_paused = True
        conn = self.tunnel or self.upstream
        if conn is not None and conn.flow is not None:
            conn.flow.pause(PEER_BUSY)

    def resume_writing(self) -> None:
        self.write_paused = False
        conn = self.tunnel or self.upstream
        if conn is not None and conn.flow is not None:
            conn.flow.resume(PEER_BUSY)
        self._release()

    # --- httptools callbacks (request side) -----------------------------------------------------

    def on_message_begin(self) -> None:
        if self.broken is not None:
            raise _LimitExceeded(self.broken)
        if self.closed:
            # RFC 9112 §9.6: after a response that closes, no further request on this
            # connection is processed, though the same read holds one (the parser stops here).
            raise _LimitExceeded(_CLOSED)
        queue = self.queue
        if queue and len(queue) >= self.limits.max_pipeline:
            raise _LimitExceeded(local_reply(503, "pipeline-limit", close=True))
        self.parsing = Exchange()
        self.in_head = True
        self.head_bytes = 0
        self.begun += 1
        if not queue:
            self.deadline_kind = HEAD
            self.deadline = self.state.now + self.header_timeout

    # (The callbacks below run only between on_message_begin and the end of the head, while
    # `parsing` is set: no None checks on the request path. httptools also reports the
    # trailer fields of a chunked body through on_header: those are dropped there.)

    def on_url(self, url: bytes) -> None:
        ex: Exchange = self.parsing  # type: ignore[assignment]
        ex.url += url
        ex.header_bytes += len(url)
        if ex.header_bytes > self.max_header_bytes:
            raise _LimitExceeded(local_reply(431, "header-too-large", close=True))

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.in_head:
            # A trailer field. Trailers are dropped: one read after the head would otherwise
            # join the lines forwarded, or change the framing (`Transfer-Encoding`), after the
            # request was authorized.
            return
        ex: Exchange = self.parsing  # type: ignore[assignment]
        size = ex.header_bytes = ex.header_bytes + len(name) + len(value) + 4
        if size > self.max_header_bytes:
            raise _LimitExceeded(local_reply(431, "header-too-large", close=True))
        headers = ex.headers
        if len(headers) >= self.max_headers:
            raise _LimitExceeded(local_reply(431, "too-many-headers", close=True))
        lname = lower_name(name)
        headers.append((lname, value))
        if lname in HOP_BY_HOP:
            self._hop_header(ex, lname, value)
            return
        if lname == b"host":
            if ex.host is not None:
                # RFC 9112 §3.2: 400. The proxy and the app could each pick another one.
                raise _LimitExceeded(local_reply(400, "duplicate-host", close=True))
            if not http1.valid_host(value):
                # RFC 9112 §3.2: 400 (`api, evil`, `user@evil`: a host the app, a router or a
                # cache could each read another way); as an absolute-form authority's.
                raise _LimitExceeded(local_reply(400, "malformed-request", close=True))
            ex.host = value
        elif lname == b"content-length" and value.strip().isdigit():
            ex.content_length = int(value)
            if ex.content_length > MAX_CONTENT_LENGTH:
                raise _LimitExceeded(local_reply(400, "malformed-request", close=True))
        if self.raw is None:
            ex.lines += (name, b": ", value, b"\r\n")

    def _hop_header(self, ex: Exchange, lname: bytes, value: bytes) -> None:
        ex.hop = True
        if lname == b"transfer-encoding":
            if not http1.names_chunked(value):
                # Chunked is the one coding the proxy frames (httptools refuses a request whose
                # last coding is not chunked; re-chunking `gzip, chunked` would drop the gzip).
                raise _LimitExceeded(local_reply(501, "transfer-encoding", close=True))
            ex.chunked = True
        elif lname == b"expect":
            ex.continue_ = value.lower() == b"100-continue"
        elif lname == b"upgrade":
            ex.upgrade_value = value
        elif lname == b"connection":
            # (Every Connection header counts: a second one adds names, it does not replace.)
            ex.connection_names = ex.connection_names | http1.named_by_connection(value)

    def on_headers_complete(self) -> None:
        ex: Exchange = self.parsing  # type: ignore[assignment]
        self.in_head = False
        raw = self.raw
        if raw is not None and not ex.hop and _plain_get(raw, ex.url) and ex.host is not None:
            # The usual request, forwarded as it came: `GET /path HTTP/1.1` with a `Host` and
            # no hop-by-hop header (so no `Connection`: HTTP/1.1 keeps the connection alive).
            # What `_whole_head` and the checks below would find, without asking the parser.
            self.raw = None
            ex.method = _GET
            ex.raw_head = raw[:-2]
            self._queue(ex)
            return
        parser = self.parser
        ex.method = parser.get_method()
        if not parser.should_keep_alive():
            ex.keep_alive = False
        if raw is not None:
            self.raw = None
            if not self._whole_head(ex, raw):
                return
        else:
            version = parser.get_http_version()
            if version != "1.1" and not self._version_ok(ex, version):
                return
            if ex.connection_names:
                ex.lines = http1.drop_named(ex.lines, ex.connection_names)
        if ex.hop and not self._framing_ok(ex):
            return
        if ex.url[:1] != b"/" and not self._target_ok(ex):
            return
        if ex.host is None and ex.authority is None and not ex.http10:
            self._fail(local_reply(400, "missing-host", close=True))
            return
        self._queue(ex)

    def _queue(self, ex: Exchange) -> None:
        """A request whose head was read and accepted: start it, or queue it behind others."""
        ex.started_at = monotonic()
        queue = self.queue
        queue.append(ex)
        if len(queue) == 1:
            self._start(ex)
        else:
            self.flow.pause(PIPELINE)  # type: ignore[union-attr]

    def _framing_ok(self, ex: Exchange) -> bool:
        """The checks of a request with a hop-by-hop header (rare) that need its whole head:
        False when it was refused."""
        if ex.chunked and ex.http10:
            # RFC 9112 §6.1: the framing of an HTTP/1.0 message with Transfer-Encoding is
            # faulty; a hop before the proxy may have read no body where it reads chunks.
            self._fail(local_reply(400, "malformed-request", close=True))
            return False
        if ex.upgrade_value and self.parser.should_upgrade():
            if ex.chunked or ex.content_length > 0:
                # httptools reads no body of an upgrade request: what follows the head is
                # tunnel bytes to it. Sent on, the head would leave the app waiting for a body
                # (or reading the next request on the connection as one) unless it switched.
                self._fail(local_reply(501, "upgrade-with-body", close=True))
                return False
            if ex.http10 or http1.upgrades_to_http(ex.upgrade_value):
                # RFC 9110 §7.8: an HTTP/1.0 request's Upgrade is ignored. An upgrade to
                # HTTP/2 (h2c) would carry further requests nobody authorized: sent without
                # it (as Envoy does), and the connection ends after the response, since
                # httptools reads nothing after an upgrade request.
                ex.keep_alive = False
                ex.headers = [
                    pair for pair in ex.headers if pair[0] not in (b"upgrade", b"http2-settings")
                ]
                ex.lines = http1.drop_named(ex.lines, _HTTP2_SETTINGS)
            else:
                ex.upgrade = True
        return True

    def _target_ok(self, ex: Exchange) -> bool:
        """A target that is not a path: absolute-form (its authority replaces `Host`),
        `OPTIONS *`, or CONNECT's; anything else is refused (False)."""
        target = ex.url
        ex.url, authority = http1.origin_form(target)
        if authority is not None:
            if ex.method == b"OPTIONS" and ex.url == b"/" and target[-1:] != b"/":
                # RFC 9112 §3.2.4: an absolute-form OPTIONS without a path asks about the
                # server, not about `/`: the last proxy sends it on as `OPTIONS *`.
                ex.url = b"*"
            if not authority or authority[0] == 58 or not http1.valid_host(authority):
                # RFC 9110 §4.2.1, §4.2.4: an empty host is invalid, and userinfo is an error
                # (it disguises the host); neither names anything a Host could (`valid_host`
                # refuses `@` and the rest that is no host).
                self._fail(local_reply(400, "malformed-request", close=True))
                return False
            # RFC 9112 §3.2.2: the target's authority replaces the Host sent (the outbound
            # router routes by the authority). The app and `authorize` see that host too.
            if ex.host is not None:
                ex.lines = http1.drop_named(ex.lines, _HOST)
                ex.host = None
            ex.authority = authority
            ex.headers = [pair for pair in ex.headers if pair[0] != b"host"]
            ex.headers.append((b"host", authority))
        elif ex.url[:1] != b"/" and ex.method != b"CONNECT" and not _asterisk(ex):
            # Neither origin- nor http(s) absolute-form (`ftp://web/admin`, `admin`): a rule
            # could match it as sent while an app reads a path out of it.
            self._fail(local_reply(400, "malformed-request", close=True))
            return False
        return True

    def _whole_head(self, ex: Exchange, raw: bytes) -> bool:
        """The read held this whole head and nothing else, and httptools accepted it (it
        refuses bare CR or LF, folded lines, space before a colon, control characters): forward
        it as it came when nothing in it changes; otherwise its header lines, less the
        hop-by-hop ones. Its version is read where a request line with single spaces has it
        (`get_http_version` formats a new string per request): only another line asks, and
        is rebuilt (httptools accepts runs of spaces in it, which an app may split on). False
        when the version was refused (`_version_ok`)."""
        at = len(ex.method) + len(ex.url) + 2
        canonical = raw[at : at + 10] == b"HTTP/1.1\r\n"
        if not canonical and not self._version_ok(ex, self.parser.get_http_version()):
            return False
        if ex.hop or not canonical or ex.url[:1] != b"/" or ex.host is None:
            ex.lines = http1.header_lines(raw, HOP_BY_HOP | ex.connection_names)
        else:
            ex.raw_head = raw[:-2]
        return True

    def _version_ok(self, ex: Exchange, version: str) -> bool:
        """A request line's version other than `HTTP/1.1` (rare; the parser reads any digit
        pair: `_parser`). 1.0 is HTTP/1.0; 1.2 to 1.9 are read as 1.1, the highest minor
        version the proxy implements (RFC 9110 §2.5), and go on as 1.1. Any other major
        version (`HTTP/2.0`, which llhttp takes as HTTP/1.0, `HTTP/0.9`, `HTTP/3.0`) is not one
        this HTTP/1.1 parser reads: 505, and the connection closes (RFC 9110 §15.6.6); False."""
        if version == "1.0":
            ex.http10 = True
        elif version[:2] != "1.":
            self._fail(local_reply(505, "version-not-supported", close=True))
            return False
        return True

    def on_body(self, body: bytes) -> None:
        self.head_bytes = 0  # (framing bytes: see data_received)
        ex = self.parsing
        if ex is None or ex.discard:
            return
        piece = http1.chunk(body) if ex.chunked else body
        if ex.conn is not None:
            ex.conn.out.append(piece)
            self.deadline = self.state.now + self.body_timeout
        elif ex.body is None:
            ex.body = [piece]
        else:
            ex.body.append(piece)

    def on_message_complete(self) -> None:
        ex, self.parsing = self.parsing, None
        if ex is None:
            return
        ex.done = True
        if ex.discard:
            if not self.queue and self.deadline_kind == BODY:
                # Answered before its end was read (see `_finish`): nothing is read now.
                self.deadline_kind = IDLE
                self.deadline = self.state.now + self.idle_timeout
            return
        if ex.chunked:
            if ex.conn is not None:
                ex.conn.out.append(http1.LAST_CHUNK)
            elif ex.body is None:
                ex.body = [http1.LAST_CHUNK]
            else:
                ex.body.append(http1.LAST_CHUNK)
        if ex.conn is not None and not ex.responded:
            self.deadline_kind = RESPONSE
            self.deadline = self.state.now + self.response_timeout

    # --- routing --------------------------------------------------------------------------------

    def _advance(self) -> None:
        """Start queued requests in order; loops (never recurses) through local replies."""
        if self._advancing:
            return
        self._advancing = True
        try:
            while self.queue and not self.queue[0].started and self.transport is not None:
                self._start(self.queue[0])
        finally:
            self._advancing = False

    def _start(self, ex: Exchange) -> None:
        ex.started = True
        if ex.method == b"CONNECT":
            # (What follows a CONNECT head is tunnel bytes to httptools, never another request.)
            self.stats.request(NOT_REACHED)
            self._reply(ex, local_reply(501, "connect-not-supported", close=True))
            return
        route = self.router.route(ex, self.peer)
        if not isinstance(route, Forward):
            self._reply(ex, route)
            return
        ex.route = route
        conn = self.pool.acquire(route.target)
        if conn is not None:
            self._attach(ex, conn, route)
            return
        self.flow.pause(CONNECTING)  # type: ignore[union-attr]
        self._set_deadline(NONE, 0)
        self.state.spawn(self._connect(ex, route))

    async def _connect(self, ex: Exchange, route: Forward) -> None:
        try:
            conn = await self.pool.get(route.target)
        except UpstreamError as exc:
            self.stats.error(exc.kind)
            if self.transport is not None and self.queue and self.queue[0] is ex:
                self.flow.resume(CONNECTING)  # type: ignore[union-attr]
                self._reply(ex, local_reply(exc.status, exc.kind))
                self.flush()
            return
        if self.transport is None or not self.queue or self.queue[0] is not ex:
            self.pool.release(conn)
            return
        self.flow.resume(CONNECTING)  # type: ignore[union-attr]
        self._attach(ex, conn, route)
        self.flush()

    def _attach(self, ex: Exchange, conn: UpstreamConnection, route: Forward) -> None:
        self.upstream = ex.conn = conn
        conn.bind(self, head_only=ex.method == b"HEAD", upgrade=ex.upgrade)
        # An HTTP/1.0 client gets no 100 (RFC 9110 §10.1.1). A peer proxy (mTLS) authorizes
        # the request: it is sent the expectation and its answer is relayed, so a request it
        # denies gets the 403 alone, not a 100 and then the 403.
        expect = ex.continue_ and not ex.http10
        if expect and route.target.tls is not None:
            ex.expect_upstream = True
            expect = False
        if self.write_paused and conn.flow is not None:
            conn.flow.pause(PEER_BUSY)
        # (Written by the flush every caller does next, with whatever else is pending.)
        conn.out.append(ex.head(route))
        if ex.body:
            conn.out.extend(ex.body)
            ex.body = None
        if ex.done:
            self.deadline_kind = RESPONSE
            self.deadline = self.state.now + self.response_timeout
            return
        if expect:
            self.out.append(http1.CONTINUE_RESPONSE)
        self.deadline_kind = BODY
        self.deadline = self.state.now + self.body_timeout

    def _reply(self, ex: Exchange, reply: Reply) -> None:
        # A small unread body is read and dropped to keep the connection; a large or
        # chunked one is not worth reading: close instead.
        unread = not ex.done and (ex.chunked or ex.content_length > 0)
        close = (
            reply.close
            or (unread and (ex.chunked or ex.continue_ or ex.content_length > DISCARD_LIMIT))
            or ex.upgrade
            or not ex.keep_alive
            or ex.http10
            or self.state.draining
        )
        if close and not reply.close:
            reply = local_reply(reply.status, reply.reason, close=True)
        self.out.append(reply.data)
        ex.status = reply.status
        ex.reason = reply.reason  # (logged: why this status, e.g. no-endpoints after allow)
        ex.close_after = close
        ex.discard = True
        self._finish(ex)

    def _fail(self, reply: Reply) -> None:
        """The request stream is broken: answer after the requests already queued, then close.
        A request whose head was read but whose body broke (a bad chunk size, a framing
        httptools refused only after the head) goes no further: not yet started, it is
        dropped; started, its upstream connection (holding part of a request) is aborted and
        the client gets `reply` for it, unless the app has begun answering already. Only the
        first failure counts: the parser reads on past a head refused in a callback
        (`GET ftp://x HTTP/1.0`), and may refuse what follows it too. Once this side closes,
        nothing is: what follows a closing answer in the same read (httptools refuses the
        bytes after a `Connection: close` request itself) is never answered."""
        if self.broken is not None or self.closed:
            return
        ex = self.parsing
        self.broken = reply
        self.parsing = None
        if self.flow is not None:
            self.flow.pause(PIPELINE)
        queue = self.queue
        if ex is not None and ex in queue:
            if not ex.started:
                queue.remove(ex)
            elif not ex.responded:
                conn = ex.conn
                if conn is not None:
                    conn.abort()
                    self.upstream = ex.conn = None
                self._reply(ex, reply)
                return
        if not queue:
            if ex is None or not ex.discard:  # (else it was answered: its body was being read
                self._refuse(reply, ex=ex)  # and dropped, and a second answer would follow)
            self._close_when_flushed()

    def _refuse(self, reply: Reply, *, ex: Exchange | None = None, elapsed: float = 0.0) -> None:
        """Send a reply to a request that never reached the router (a malformed or oversized
        head, a header timeout), counted as one that never reached authorization. Its latency
        is 0, answered as soon as its head was found wanting, or the head's time for a 408:
        the head was never read, and the time it began is known only to `state.now`'s 0.25 s,
        which put up to 250 ms on an instant 400."""
        self.out.append(reply.data)
        self.stats.request(NOT_REACHED)
        self._ended(ex, reply.status, reply.reason, elapsed)

    def _ended(self, ex: Exchange | None, status: int, reason: str, elapsed: float) -> None:
        """A response that did not end in `_finish` (a local answer before routing, a timeout,
        one cut off): counted, and logged like the others."""
        self.stats.response(status, elapsed)
        if self.access_log is not None:
            self._record(ex, status, reason, elapsed)

    # --- completion, tunnels, deadlines ---------------------------------------------------------

    def _finish(self, ex: Exchange) -> None:
        queue = self.queue
        if queue and queue[0] is ex:
            queue.pop(0)
        elapsed = (monotonic() - ex.started_at) * 1000.0
        self.stats.response(ex.status, elapsed)
        if self.access_log is not None:
            self._log(ex, elapsed)
        if ex.close_after or not ex.keep_alive or self.state.draining:
            self._close_when_flushed()
        elif queue:
            if len(queue) == 1 and self.broken is None:
                self.flow.resume(PIPELINE)  # type: ignore[union-attr]
            self._advance()
        elif self.broken is not None:
            self._refuse(self.broken)
            self._close_when_flushed()
        elif self.parsing is ex:
            # Answered before its end was read (a small body is read and dropped): the rest
            # is bounded as a body, and once it ends the connection is idle
            # (on_message_complete). Never a 408: this request has had its answer.
            self._set_deadline(BODY, self.body_timeout)
        elif self.parsing is not None:
            self._set_deadline(HEAD, self.header_timeout)
        else:  # (the usual case, inlined)
            self.deadline_kind = IDLE
            self.deadline = self.state.now + self.idle_timeout

    def _log(self, ex: Exchange, elapsed: float) -> None:
        self._record(ex, ex.status, ex.reason, elapsed)

    def _record(self, ex: Exchange | None, status: int, reason: str, elapsed: float) -> None:
        assert self.access_log is not None
        peer = getattr(self.peer, "identity", None)
        self.access_log.record(
            direction=self.direction,
            peer=peer,
            method=b"" if ex is None else ex.method,
            path=b"" if ex is None else ex.url,
            status=status,
            reason=reason,
            duration_ms=elapsed,
        )

    def _close_when_flushed(self) -> None:
        self.closed = True
        self.flush()
        self._set_deadline(LINGER, LINGER_SECONDS)
        if self.transport is not None:
            self.transport.close()

    def _set_deadline(self, kind: int, seconds: float) -> None:
        self.deadline_kind = kind
        self.deadline = FAR if kind == NONE else self.state.now + seconds

    def on_deadline(self, now: float) -> None:
        """Called by the ticker once `deadline` has passed."""
        kind = self.deadline_kind
        if kind == TUNNEL:
            self._tunnel_due(now)
            return
        if kind == LINGER:
            transport = self.transport
            if transport is not None and transport.get_write_buffer_size() and self._postpone(now):
                return  # the client has yet to read the end: a slow reader, not a half-open peer
            self._set_deadline(NONE, 0)
            if transport is not None:
                transport.abort()
            return
        if self._held(kind):  # (only a body, response or stream deadline is ever held)
            if not self._postpone(now):
                self._stalled(now)
            return
        if kind in (HEAD, BODY, RESPONSE) and self.queue and not self.queue[0].responded:
            if kind == RESPONSE:
                self._time_out(now, 504, "upstream-timeout", "timeout")
            else:
                self._time_out(now, 408, "timeout", "client-timeout")
            return
        if kind == HEAD:
            self.stats.error("client-timeout")
            self._refuse(local_reply(408, "timeout", close=True), elapsed=self.header_timeout * 1e3)
        elif kind == STREAM and self.upstream is not None:
            self.stats.error("timeout")  # the upstream fell silent mid-body
            self._cut_off()
            return
        self._close_when_flushed()

    def shutdown(self) -> None:
        """Draining: close now if idle; otherwise close after the response in flight."""
        if not self.queue and self.parsing is None and self.tunnel is None:
            self._close_when_flushed()
        for ex in self.queue:
            ex.keep_alive = False
