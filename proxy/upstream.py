"""Connections from the proxy to where requests go (the local app, or a backend's inbound proxy),
and the keep-alive pool that reuses them.

An `UpstreamConnection` sends one request at a time and parses the response with httptools
(or, when one read holds the whole of a plain response, with `proxy.simplehead`), handing the
head, body pieces and end to the `ResponseRelay` it is bound to (proxy.relay: the downstream
connection that owns the request). Between requests it sits in the
`ConnectionPool`. For mTLS upstreams the peer's SPIFFE identity is checked against the
endpoint's before the connection is used (secure naming): a backend proxy holding another
workload's certificate gets no request.

    UpstreamError            the request could not be delivered (carries the status to answer)
    ├── ConnectFailed        nothing listening, refused, TLS handshake refused    → 503
    ├── ConnectTimeout       no connection within the connect timeout             → 503
    └── IdentityMismatch     the peer's certificate names another workload        → 502
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Final, Protocol, cast

import httptools

from proxy import tlslayer
from proxy.flow import HIGH_WATER, LOW_WATER, FlowControl
from proxy.http1 import (
    drop_named,
    named_by_connection,
    names_chunked,
    special_at,
    upgrade_offered,
)
from proxy.lists import drained, one_slot
from proxy.peercert import peer_identity
from proxy.simplehead import read_response
from proxy.state import ServerState

if TYPE_CHECKING:
    # The one sink there is (the downstream connection): typed as the class, not a protocol,
    # so that compiled code calls its methods directly instead of looking each up by name.
    from proxy.relay import ResponseRelay

# The largest Content-Length relayed (as proxy.server.MAX_CONTENT_LENGTH for requests).
MAX_CONTENT_LENGTH: Final = 2**63 - 1
# The most response head an upstream may send before its end (then: 502, connection closed).
MAX_RESPONSE_HEAD: Final = 64 * 1024
# The most connections opened at once to one target (see ConnectionPool).
MAX_DIALS: Final = 4
LOOPBACK_V4: Final = "127.0.0.1"
LOOPBACK_V6: Final = "::1"

log = logging.getLogger("smictl.proxy.upstream")


class ClientTLS(Protocol):
    """Where the current client TLS context comes from (rotated certificates swap it)."""

    @property
    def client_context(self) -> ssl.SSLContext: ...


@dataclass(frozen=True, slots=True, eq=False)
class Target:
    """Where to send a request: address, TLS (None = plain), and the SPIFFE id the peer must
    prove. `key` names the pool bucket."""

    host: str
    port: int
    tls: ClientTLS | None = None
    identity: str | None = None
    key: str = field(init=False)

    def __post_init__(self) -> None:
        # TLS is part of the bucket: a plain connection to the local app must never be handed
        # to an mTLS target at the same address (an endpoint entry naming the app's own port
        # with no identity), which would skip the peer proxy and its authorization.
        scheme = "plain" if self.tls is None else "mtls"
        object.__setattr__(self, "key", f"{scheme}://{self.host}:{self.port}/{self.identity or ''}")


class UpstreamError(Exception):
    status: ClassVar[int] = 502
    kind: ClassVar[str] = "upstream"


class ConnectFailed(UpstreamError):
    status: ClassVar[int] = 503
    kind: ClassVar[str] = "connect"


class ConnectTimeout(UpstreamError):
    status: ClassVar[int] = 503
    kind: ClassVar[str] = "connect-timeout"


class IdentityMismatch(UpstreamError):
    status: ClassVar[int] = 502
    kind: ClassVar[str] = "identity"


class UpstreamConnection(asyncio.BaseProtocol):
    def __init__(self, pool: ConnectionPool, target: Target) -> None:
        # Per-connection state
        self.pool = pool
        self.target = target
        self.transport: asyncio.Transport | None = None
        # `transport.write`, bound once: a call by name would look the method up in the
        # transport's type on every write, the costliest C-API step of a cold request
        # (docs/proxy.md, "Method calls by name").
        self.send: Callable[[bytes], object] = tlslayer.no_write
        self.flow: FlowControl | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: ResponseRelay | None = None
        self.out: list[bytes] = one_slot()  # (proxy.lists)
        self.closed = False
        self.tunnel = False
        self.idle_since = 0.0
        self.peer_identity: str | None = None
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.requests = 0
        self._reset_parser = False
        # A response ended in the read being parsed: a message begun after it in the same
        # read is bytes no request asked for (`on_message_begin`).
        self.ended_in_read = False
        # Per-response state
        self.head_only = False  # the request was HEAD: the response has no body
        self.upgrade_asked = False  # the request asked for an upgrade: a 101 may answer it
        self.status = 0
        self.reason = b""
        self.lines: list[bytes] = []
        # What has come of the response head being read: the reads (joined only when a head
        # spans several, so trickled bytes are not copied over and over) and their size.
        self.head: list[bytes] = []
        self.head_size = 0
        self.chunked = False
        self.has_length = False
        self.upgrade = b""
        self.keep_alive = True
        self.responding = False  # a response head arrived and its end has not
        self.got_bytes = False
        self._drop: frozenset[bytes] = frozenset()

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        self.send = transport.write
        self.flow = FlowControl(transport)
        transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        if self.target.tls is not None and not self._peer_ok(transport):
            self.connected.set_exception(
                IdentityMismatch(
                    f"{self.target.host}:{self.target.port} presented "
                    f"{self.peer_identity or 'no identity'}, expected {self.target.identity}"
                )
            )
            transport.abort()
            return
        self.connected.set_result(None)

    def _peer_ok(self, transport: asyncio.Transport) -> bool:
        self.peer_identity = peer_spiffe_id(transport)
        return self.target.identity is None or self.peer_identity == self.target.identity

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:  # bytes nobody asked for: the connection cannot be trusted again
            self.close()
            return
        self.got_bytes = True
        if self.tunnel:
            sink.on_tunnel_data(data)
            sink.flush()
            return
        if not self.responding:  # the head is still to come (in whole or in part)
            if not self.head and self._read_simple(data, sink):
                sink.flush()
                return
            self.head.append(data)
            self.head_size += len(data)
            if self.head_size > MAX_RESPONSE_HEAD and not _head_ended(self._joined_head()):
                self._broken()
                return
        self.ended_in_read = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(data[exc.args[0] :])
        except httptools.HttpParserError:
            self._broken()
            return
        if self._reset_parser:
            self._reset_parser = False
            self.parser = httptools.HttpResponseParser(self)
        sink.flush()

    def _read_simple(self, data: bytes, sink: ResponseRelay) -> bool:
        """A read that is one whole plain response, the usual one (proxy.simplehead): read
        without httptools, which stays at the message boundary; True if it was."""
        if self.head_only or self.upgrade_asked:
            return False
        end, keep_alive, fields, drop, drop_end = read_response(data, MAX_RESPONSE_HEAD)
        if end < 0:
            return False
        self.status = (data[9] - 48) * 100 + (data[10] - 48) * 10 + data[11] - 48
        self.keep_alive = keep_alive
        self.has_length = True
        self.responding = True
        if fields > 15 and sink.on_plain_response(self, data, drop, drop_end):
            self.on_message_complete()  # (a status line with a reason phrase: sent as it came)
            return True
        # The relay must change it (or it has no reason phrase): the reason and the header
        # lines as they came, less the `Connection` line, what `_read_head` keeps of such a
        # head, without cutting it into lines again.
        # (`reason_of` the status line; `HTTP/1.1 200` has none, and a slice whose end is before
        # its start is a negative size to the compiled build, not b"")
        self.reason = data[13 : fields - 2] if fields > 15 else b""
        stop = end + 2
        if drop < 0:
            self.lines = [data[fields:stop]]
        else:
            lines = self.lines = []
            if drop > fields:
                lines.append(data[fields:drop])
            if drop_end < stop:
                lines.append(data[drop_end:stop])
        sink.on_response_head(self)
        if len(data) > end + 4:
            sink.on_response_body(data[end + 4 :])
        self.on_message_complete()
        return True

    def _upgraded(self, rest: bytes) -> None:
        self.tunnel = True
        self.keep_alive = False
        if self.sink is not None and rest:
            self.sink.on_tunnel_data(rest)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.connected.done():
            self.connected.set_exception(ConnectFailed(f"closed during connect: {exc}"))
        self._lost()

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.on_upstream_busy(True)

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.on_upstream_busy(False)

    # --- httptools callbacks -------------------------------------------------------------------

    def _new_response(self) -> None:
        # (Not in on_message_begin, which only tells bytes that follow a response apart.)
        self.status, self.reason, self.lines = 0, b"", []
        self.chunked = self.has_length = False
        self.upgrade = b""
        if self._drop:
            self._drop = frozenset()

    def _joined_head(self) -> bytes:
        parts = self.head
        if len(parts) == 1:
            return parts[0]
        joined = b"".join(parts)
        self.head = [joined]
        return joined

    # (No on_header: httptools then skips its per-header callbacks, and the header lines are
    # read from the head as it came, in `_read_head`.)

    def _read_head(self, head: bytes, end: int) -> None:
        """The header lines to forward, from the head just parsed (`head[:end]`, less its
        empty last line), and what the proxy must know of them. httptools accepts only CRLF
        line ends, no folded lines and no space before a colon: every line after the status
        line is one `name:value`. Only the lines of special names are looked at
        (`special_at`: a byte compared for most); the runs of lines between those dropped go
        on as slices of the head (one for nginx's usual head, whose last line is
        `Connection`). The head is split in one call: a `find` per line boundary, each a
        method call from compiled code, cost more (`--micro` 4.34-4.41 -> 4.17-4.28 us per
        request)."""
        lines = head[:end].split(b"\r\n")
        first = lines[0]
        self.reason = reason_of(first)
        if len(lines) < 2:
            return  # a status line alone
        pieces: list[bytes] = []
        # RFC 9110 §8.6: no Content-Length in a 1xx or 204 (which never has a body, whatever
        # it says): a client that believed it would wait for a body that never comes.
        length_allowed = self.status >= 200 and self.status != 204
        start = at = len(first) + 2  # the run of kept lines, and the line looked at
        for i in range(1, len(lines)):
            line = lines[i]
            n = len(line)
            name = special_at(line, 0, n) if n else b""
            if name:
                if name == b"content-length" and length_allowed:
                    self.has_length = True
                    if n > 33 and int(_value_of(line, 15)) > MAX_CONTENT_LENGTH:
                        # (Only a line long enough for 19 digits can be.) httptools reads up
                        # to 2^64-1; a client reading a signed 64-bit number would not see
                        # that length, as a request with it gets 400 (nginx: 502 too).
                        raise UpstreamError("a Content-Length past 2^63-1")
                else:
                    if at > start:
                        pieces.append(head[start:at])
                    start = at + n + 2
                    if name == b"transfer-encoding" and line.rstrip(b" ")[-1:] == b"\t":
                        # `chunked` then a tab: httptools reads no chunks there (the body
                        # runs to the close), where the value, trimmed, says chunked.
                        raise UpstreamError(f"unsupported transfer-encoding {line!r}")
                    if name != b"content-length":
                        self._hop_header(name, _value_of(line, len(name) + 1))
            at += n + 2
        if at > start:
            pieces.append(head[start:at])  # (to the last line's CRLF, which `head` holds)
        self.lines = pieces
        if self._drop:
            self.lines = drop_named(self.lines, self._drop)

    def _hop_header(self, name: bytes, value: bytes) -> None:
        if name == b"connection":
            names = named_by_connection(value)
            if names:
                self._drop = self._drop | names
        elif name == b"transfer-encoding":
            if not names_chunked(value):
                # Re-chunking would drop the other codings; a close-delimited body under a
                # `Transfer-Encoding` is what a client could frame otherwise (nginx: 502 too).
                raise UpstreamError(f"unsupported transfer-encoding {value!r}")
            self.chunked = True
        elif name == b"upgrade":
            self.upgrade = value

    def on_headers_complete(self) -> None:
        sink = self.sink
        if sink is None:
            # A response after the end of the one asked for, in the same read: the connection
            # is out of step (its next reader would take this response for its own).
            raise UpstreamError("a response nobody asked for")
        head = self._joined_head()
        if head[0] == 13 or head[0] == 10:
            # Empty lines before the status line, which httptools skips: so does the head.
            head = head.lstrip(b"\r\n")
        if len(head) > 11 and head[8] == 32:
            # `HTTP/1.1 200`: httptools accepted exactly three digits there (read in place,
            # not by a method call).
            self.status = (head[9] - 48) * 100 + (head[10] - 48) * 10 + head[11] - 48
        else:
            self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        if self.status == 101 and not self.upgrade_asked:
            # Only an upgrade the request asked for (and was authorized for) becomes a tunnel.
            raise UpstreamError("101 to a request that asked for no upgrade")
        # The head ends at its first empty line (httptools refuses any other line end).
        end = head.find(b"\r\n\r\n")
        if end < 0:
            raise UpstreamError("no response head where the parser found one")
        if end > MAX_RESPONSE_HEAD:  # (data_received refuses one still open past the limit)
            raise UpstreamError("a response head over the limit")
        self._read_head(head, end)
        if self.status == 101:
            self._check_switch(sink)
        if self.status < 200 or self.status > 599:
            if self.status < 100 or self.status > 599:
                # RFC 9110 §15: no such status (100-599). Relayed as an interim response, one
                # below 100 would be a line no client can read, followed by whatever the app
                # sent after it; one of 600 or more, a status no client knows the class of.
                raise UpstreamError(f"status {self.status}")
            if self.status != 101:
                sink.on_interim(self)
                self._new_response()
                rest = head[end + 4 :]  # the next head (an interim response has no body)
                self.head, self.head_size = ([rest] if rest else []), len(rest)
                return
        self.head, self.head_size = [], 0
        self.responding = True
        sink.on_response_head(self)
        if self.head_only and self.status != 101:
            # httptools cannot be told that a HEAD response has no body; end it here and
            # start a fresh parser for the next response.
            self._reset_parser = True
            self._end()

    def _check_switch(self, sink: ResponseRelay) -> None:
        """A 101 to a request that asked for an upgrade: raise unless it names a protocol
        switched to, and only those the request offered."""
        if not self.upgrade:
            # RFC 9110 §15.2.2: a 101 names the protocol switched to. Without, httptools
            # reads no tunnel after it (it stops with an error), and the client would be sent
            # a switch to nothing.
            raise UpstreamError("101 without Upgrade")
        if not upgrade_offered(sink.queue[0].upgrade_value, self.upgrade):
            # RFC 9110 §7.8: only to a protocol the request offered. The tunnel was authorized
            # for that upgrade; a switch to another (`h2c` for `websocket`) would carry what
            # nobody authorized (for h2c, every further request).
            raise UpstreamError(f"101 to {self.upgrade!r}, which was not asked for")

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.on_response_body(body)

    def on_message_begin(self) -> None:
        if self.ended_in_read:
            # Bytes after a whole response, in its read (a head not yet whole, which
            # `on_headers_complete` would not see): no request on this connection asked for
            # them, so it is out of step and never used again (`_broken`, after the response
            # went out whole).
            raise UpstreamError("bytes after a whole response, in its read")

    def on_message_complete(self) -> None:
        if self.responding and not self.head_only and self.status >= 200:
            self.ended_in_read = True
            self.responding = False
            sink, self.sink = self.sink, None
            if sink is not None:
                sink.on_response_end(self)

    # --- used by the downstream side ------------------------------------------------------------

    def bind(self, sink: ResponseRelay, *, head_only: bool, upgrade: bool = False) -> None:
        self.sink = sink
        self.head_only = head_only
        self.upgrade_asked = upgrade
        self.responding = False
        self.got_bytes = False
        self.requests += 1
        # (No list made per request: the last response's head list is empty unless it left
        # bytes, and `_NO_LINES` is never added to.)
        if self.head:
            self.head = []
        self.head_size = 0
        self.status, self.reason, self.lines = 0, b"", _NO_LINES
        self.chunked = self.has_length = False
        self.upgrade = b""
        if len(self._drop):
            self._drop = frozenset()

    def flush(self) -> None:
        data, self.out = drained(self.out)  # (as ResponseRelay._write_out)
        if len(data) and self.transport is not None and not self.closed:
            self.send(data)

    def write_raw(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.send(data)

    def close(self) -> None:
        self.closed = True
        self.sink = None
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.sink = None
        if self.transport is not None:
            self.transport.abort()

    def _end(self) -> None:
        self.responding = False
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.on_response_end(self)

    def _broken(self) -> None:
        """The upstream sent what is not an acceptable response: the request fails (502), and
        the connection is closed."""
        self.keep_alive = False
        self._lost()
        self.close()

    def _lost(self) -> None:
        """The connection ended or broke. A close-delimited response ends here normally."""
        sink = self.sink
        if sink is None:
            self.pool.discard(self)
            return
        if self.responding and not self.chunked and not self.has_length and not self.tunnel:
            self.keep_alive = False
            self._end()
            return
        self.sink = None
        sink.on_upstream_lost(self)


# A response's header lines before its head is read: the same empty list for every response,
# which nothing adds to (each head read gives `lines` a list of its own).
_NO_LINES: Final[list[bytes]] = []


def _value_of(line: bytes, at: int) -> bytes:
    """The value of a header line whose colon is at `at - 1`, without the whitespace around
    it (`bytes.strip`, which is a method call from compiled code; httptools allows only SP and
    HTAB there)."""
    end = len(line)
    while at < end and (line[at] == 32 or line[at] == 9):
        at += 1
    while end > at and (line[end - 1] == 32 or line[end - 1] == 9):
        end -= 1
    return line[at:end]


def _head_ended(head: bytes) -> bool:
    """Whether the response head in `head` (the reads so far) has its empty last line. Empty
    lines before the status line, which httptools skips, do not count: a head that starts
    with two of them would otherwise seem ended at once, and escape MAX_RESPONSE_HEAD."""
    start = len(head) - len(head.lstrip(b"\r\n"))
    return head.find(b"\r\n\r\n", start) >= 0


def reason_of(status_line: bytes) -> bytes:
    """The reason phrase of a status line httptools accepted (`HTTP/1.1 200 OK`, without its
    CRLF): what follows the three-digit code and its space. Read from the head, instead of an
    `on_status` callback per response. (httptools takes exactly three digits after the version
    and one space; `HTTP/1.1 200` has no reason at all.)"""
    at = 9 if len(status_line) > 8 and status_line[8] == 32 else status_line.find(b" ") + 1
    return status_line[at + 4 :]


def peer_spiffe_id(transport: asyncio.BaseTransport) -> str | None:
    """The SPIFFE id in the verified certificate of a TLS peer, or None."""
    ident = peer_identity(transport.get_extra_info("ssl_object"))
    return None if ident is None else ident.spiffe_id


Connector = Callable[["ConnectionPool", Target], Awaitable[UpstreamConnection]]


class ConnectionPool:
    """Idle keep-alive connections per target, and the requests waiting for one.

    A request that finds no idle connection waits for the first of: a connection another
    request gives back, or one of the connections being opened for its target. At most
    `max_dials` are opened at once per target, and only while more requests wait than are
    being opened for: a stall that queues requests (a pause of the machine, a burst) then costs
    a few handshakes, where a connection per queued request made a storm of them that stalled
    everything further (measured on the bench's mTLS pair: a few ms' pause grew the pool from
    6 to 56 connections, p99 58 ms). Each waiter gives up after the connect timeout (503)."""

    def __init__(
        self,
        *,
        connect_timeout: float = 1.0,
        max_idle_per_target: int = 128,
        idle_timeout: float = 60.0,
        max_dials: int = MAX_DIALS,
        connector: Connector | None = None,
        state: ServerState | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle_per_target
        self.idle_timeout = idle_timeout
        self.max_dials = max_dials
        self._idle: dict[str, list[UpstreamConnection]] = {}
        # Per target key, only while non-empty / non-zero: the requests waiting for a
        # connection (oldest first), and the connections being opened.
        self._waiting: dict[str, deque[asyncio.Future[UpstreamConnection]]] = {}
        self._dialing: dict[str, int] = {}
        self._connector = connector or _open
        # Connections are opened in background tasks of the proxy's state (cancelled when it
        # stops); a pool of its own state otherwise (tests, tools).
        self.state = state if state is not None else ServerState()
        self.opened = 0
        self.closed = False
        self.now = time.monotonic()  # coarse, advanced by `sweep`

    def acquire(self, target: Target) -> UpstreamConnection | None:
        idle = self._idle.get(target.key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def get(self, target: Target) -> UpstreamConnection:
        """A connection for a request that `acquire` found none for (see the class's
        docstring). Raises the `UpstreamError` of a failed attempt, or `ConnectTimeout`."""
        while True:
            conn = self.acquire(target)
            if conn is None:
                conn = await self._wait(target)
            if not conn.closed:  # (it may have closed between being handed over and now)
                return conn

    async def _wait(self, target: Target) -> UpstreamConnection:
        if self.closed:
            raise ConnectFailed("the proxy is shutting down")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[UpstreamConnection] = loop.create_future()
        key = target.key
        waiting = self._waiting.get(key)
        if waiting is None:
            waiting = self._waiting[key] = deque()
        waiting.append(waiter)
        self._dial_for(target)
        timer = loop.call_later(self.connect_timeout, self._expire, waiter, target)
        try:
            return await waiter
        except asyncio.CancelledError:
            self._forget(waiter, key)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())  # handed over just before the cancel: pass it on
            raise
        finally:
            timer.cancel()

    def _expire(self, waiter: asyncio.Future[UpstreamConnection], target: Target) -> None:
        if not waiter.done():
            self._forget(waiter, target.key)
            waiter.set_exception(ConnectTimeout(f"no connection to {target.host}:{target.port}"))

    def _forget(self, waiter: asyncio.Future[UpstreamConnection], key: str) -> None:
        waiting = self._waiting.get(key)
        if waiting is not None and waiter in waiting:
            waiting.remove(waiter)
            if not waiting:
                del self._waiting[key]

    def _next_waiter(self, key: str) -> asyncio.Future[UpstreamConnection] | None:
        """The oldest request still waiting for a connection to `key`, taken off the queue."""
        waiting = self._waiting.get(key)
        found = None
        while waiting and found is None:
            waiter = waiting.popleft()
            if not waiter.done():
                found = waiter
        if waiting is not None and not waiting:
            del self._waiting[key]
        return found

    def _dial_for(self, target: Target) -> None:
        """Open one more connection to `target` if more requests wait than are being opened
        for, and fewer than `max_dials` are being opened."""
        key = target.key
        waiting = self._waiting.get(key)
        dialing = self._dialing.get(key, 0)
        if waiting and dialing < len(waiting) and dialing < self.max_dials:
            self._dialing[key] = dialing + 1
            self.state.spawn(self._dial(target))

    async def _dial(self, target: Target) -> None:
        key = target.key
        conn: UpstreamConnection | None = None
        error: UpstreamError | None = None
        try:
            conn = await self.connect(target)
        except UpstreamError as exc:
            error = exc
        except Exception as exc:  # a bug: fail a request rather than leave it to its timeout
            log.exception("opening a connection to %s:%s failed", target.host, target.port)
            error = ConnectFailed(f"cannot connect to {target.host}:{target.port}: {exc!r}")
        finally:
            left = self._dialing[key] - 1
            if left:
                self._dialing[key] = left
            else:
                del self._dialing[key]
        if conn is not None:
            self._keep(conn)
        elif error is not None:
            waiter = self._next_waiter(key)
            if waiter is not None:
                waiter.set_exception(error)
        self._dial_for(target)

    async def connect(self, target: Target) -> UpstreamConnection:
        """A new connection to `target` (no pooling): the connector within the connect
        timeout, its failures as `UpstreamError`s."""
        try:
            conn = await asyncio.wait_for(self._connector(self, target), self.connect_timeout)
        except TimeoutError as exc:
            raise ConnectTimeout(f"no connection to {target.host}:{target.port}") from exc
        except ssl.SSLError as exc:
            raise ConnectFailed(f"TLS with {target.host}:{target.port} failed: {exc}") from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {target.host}:{target.port}: {exc}") from exc
        self.opened += 1
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        if conn.closed or not conn.keep_alive or conn.tunnel:
            conn.close()
            return
        self._keep(conn)

    def _keep(self, conn: UpstreamConnection) -> None:
        """To the oldest request waiting for its target, else among the idle."""
        if self._waiting:
            waiter = self._next_waiter(conn.target.key)
            if waiter is not None:
                waiter.set_result(conn)
                return
        if self.closed:
            conn.close()
            return
        idle = self._idle.get(conn.target.key)
        if idle is None:
            idle = self._idle[conn.target.key] = one_slot()  # (proxy.lists)
        if len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = self.now
        idle.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.target.key)
        if idle and conn in idle:
            idle.remove(conn)

    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())

    def waiting_count(self) -> int:
        return sum(len(v) for v in self._waiting.values())

    def sweep(self, now: float) -> None:
        """Close connections idle for longer than the idle timeout."""
        self.now = now
        limit = now - self.idle_timeout
        for key, idle in list(self._idle.items()):
            keep = [c for c in idle if c.idle_since > limit and not c.closed]
            if len(keep) == len(idle):
                continue  # (the list stays as it is, its one slot with it: proxy.lists)
            for conn in idle:
                if conn not in keep:
                    conn.close()
            if len(keep) == 1:
                self._idle[key] = [keep[0]]  # (room for one: proxy.lists)
            elif keep:
                self._idle[key] = keep
            else:
                del self._idle[key]

    def close_all(self) -> None:
        """Close the idle connections, fail the waiting requests; connections still being
        opened are closed when they are."""
        self.closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        for key in list(self._waiting):
            while (waiter := self._next_waiter(key)) is not None:
                waiter.set_exception(ConnectFailed("the proxy is shutting down"))


def loopback_alternate(target: Target) -> str | None:
    """Where else to dial the local app when 127.0.0.1 refuses: `::1`. An app that binds
    `localhost` listens on `::1` alone where the resolver puts IPv6 first (Node.js 17 and
    later), and the default `--app-host` would never reach it. Only for a plain target (the
    app itself; peers are mTLS), and never the other way round: an app-host of ::1 is meant."""
    if target.tls is None and target.host == LOOPBACK_V4:
        return LOOPBACK_V6
    return None


async def dial(
    factory: Callable[[], asyncio.BaseProtocol], target: Target, ctx: ssl.SSLContext | None
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """A connection to `target`, to `::1` if it is the app at 127.0.0.1 and refuses there
    (`loopback_alternate`); the first refusal is what fails."""
    loop = asyncio.get_running_loop()
    try:
        if ctx is not None:
            layer, protocol = await tlslayer.connect(factory, target.host, target.port, ctx)
            return cast(asyncio.BaseTransport, layer), protocol  # (a transport by its methods)
        return await loop.create_connection(factory, target.host, target.port)
    except ConnectionRefusedError as exc:
        refused = exc
    # (Nothing awaited inside an `except`: compiled by mypyc, an await there left the handled
    # exception as the thread's current one after the coroutine went on, and httptools chains
    # it as the `__context__` of the next callback error, which server.py reads.)
    alternate = loopback_alternate(target)
    if alternate is not None:
        with contextlib.suppress(OSError):
            return await loop.create_connection(factory, alternate, target.port)
    raise refused  # (for ::1 too: the app is down; say so for the address it was asked at)


async def _open(pool: ConnectionPool, target: Target) -> UpstreamConnection:
    ctx = target.tls.client_context if target.tls is not None else None
    _, protocol = await dial(lambda: UpstreamConnection(pool, target), target, ctx)
    conn = cast(UpstreamConnection, protocol)
    await conn.connected
    return conn
