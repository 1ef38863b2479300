"""The response half of a downstream connection: what its upstream connection reports.

`HttpProxy` (proxy.server) parses requests and routes them; this mixin relays what comes back:
the response head (re-framed for the client: chunked, Content-Length, or close-delimited, with
`connection: close` when the connection must end), the body pieces, the end (which returns the
upstream connection to the pool), interim 1xx responses, a 101 that turns both sides into a
tunnel, back-pressure, and an upstream that goes away (502 before a response, an aborted client
connection in the middle of one, one retry for a stale pooled connection).

Back-pressure and deadlines: a deadline that measures a peer's silence (the body, response and
stream deadlines) is suspended while the proxy itself keeps that peer silent — reading paused
because the other side is not taking what is queued for it — and restarts in full when reading
resumes. Such a stall is bounded by the idle timeout instead, counted from when either peer
last took any of the bytes queued for it (nginx's send timeouts, Envoy's stream idle timeout):
a client that stops reading is cut off, an app that stops reading a request gets it a 504.

Tunnels (after a 101): both directions are plain bytes, so no deadline measures either peer.
One that neither peer has sent a byte on for the tunnel idle timeout is closed (WebSockets ping
far more often; Envoy's stream idle timeout covers upgrades too), and one held by back-pressure
is bounded by the idle timeout as above, counted from when the peer that is not reading last
took any of its bytes. A tunnel outlives the policy that let its upgrade in: `upgrade_request`
and `cut_tunnel` let proxy.tunnels authorize it again when the policy changes, and end it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from time import monotonic
from typing import Any, Final

from mypy_extensions import i64

from proxy import http1
from proxy.exchange import Exchange, Forward
from proxy.flow import CONNECTING, PEER_BUSY, UPGRADE, FlowControl
from proxy.http1 import Reply, local_reply
from proxy.lists import drained
from proxy.metrics import DirectionStats
from proxy.state import ServerState
from proxy.upstream import ConnectionPool, UpstreamConnection

# Deadline kinds: what happens when the connection's deadline passes.
NONE: Final = 0
IDLE: Final = 1
HEAD: Final = 2
BODY: Final = 3
RESPONSE: Final = 4
STREAM: Final = 5
LINGER: Final = 6
TUNNEL: Final = 7  # an upgraded connection: idle and stall bounds (`_tunnel_due`)
# After a close, how long a peer may keep the connection half-open (still sending, or not
# acknowledging the TLS close) before it is cut.
LINGER_SECONDS: Final = 2.0
FAR: Final = float("inf")


class ResponseRelay:
    # Provided by HttpProxy (Per-connection state).
    transport: asyncio.Transport | None
    send: Callable[[bytes], object]  # `transport.write`, bound once (UpstreamConnection.send)
    flow: FlowControl | None
    queue: list[Exchange]
    out: list[bytes]
    upstream: UpstreamConnection | None
    tunnel: UpstreamConnection | None
    tunnel_pending: list[bytes]
    write_paused: bool
    pool: ConnectionPool
    state: ServerState
    stats: DirectionStats
    body_timeout: float
    response_timeout: float
    idle_timeout: float
    tunnel_idle_timeout: float
    deadline: float
    deadline_kind: int
    # Back-pressure stall (see the module docstring): when it began or the peers last took
    # bytes (0: none), and how many bytes were then queued for them.
    stall_at: float
    stall_bytes: int
    # Tunnels: the upgrade request the tunnel was opened for (what it was authorized on), and
    # when either peer last sent a byte through it (`state.now`).
    tunnel_request: Exchange | None
    tunnel_at: float

    def _finish(self, ex: Exchange) -> None:
        raise NotImplementedError

    def _reply(self, ex: Exchange, reply: Reply) -> None:
        raise NotImplementedError

    def _close_when_flushed(self) -> None:
        raise NotImplementedError

    def _ended(self, ex: Exchange | None, status: int, reason: str, elapsed: float) -> None:
        raise NotImplementedError

    def _set_deadline(self, kind: int, seconds: float) -> None:
        raise NotImplementedError

    def _connect(self, ex: Exchange, route: Forward) -> Coroutine[Any, Any, None]:
        raise NotImplementedError

    # --- the sink of an upstream connection (called by it) --------------------------------------

    def on_interim(self, conn: UpstreamConnection) -> None:
        ex = self.queue[0]
        if ex.http10:
            return  # no 1xx to an HTTP/1.0 client (RFC 9110 §15.2)
        if conn.status == 100:
            if not ex.expect_upstream:
                return  # the proxy answered 100-continue itself, or nobody asked for one
            ex.expect_upstream = False  # (one is enough)
        self.out.append(
            b"HTTP/1.1 %d %s\r\n%s\r\n" % (conn.status, conn.reason, b"".join(conn.lines))
        )

    def on_response_head(self, conn: UpstreamConnection) -> None:
        ex = self.queue[0]
        ex.responded = True
        ex.status = status = conn.status
        # The head goes out in pieces: `flush` joins everything pending in one write.
        out = self.out
        reason = conn.reason
        out.append(http1.status_line(status, reason if len(reason) else http1.phrase(status)))
        out += conn.lines
        if status == 101:
            out.append(http1.UPGRADE_HEADER + b"upgrade: %s\r\n\r\n" % conn.upgrade)
            self._open_tunnel(conn)
            return
        no_body = conn.head_only or status in (204, 304)
        close = (
            not ex.keep_alive or ex.close_after or ex.upgrade or self.state.draining or not ex.done
        )
        if conn.chunked and not no_body:
            if ex.http10:
                close = True
            else:
                ex.resp_chunked = True
                out.append(http1.CHUNKED_HEADER)
        elif not conn.has_length and not no_body:
            close = True  # the body ends when the upstream closes: so must this response
        if close:
            out.append(http1.CLOSE_HEADER)
        elif ex.http10:
            out.append(http1.KEEP_ALIVE_HEADER)
        out.append(b"\r\n")
        ex.close_after = close
        self.deadline_kind = STREAM
        self.deadline = self.state.now + self.response_timeout

    def on_plain_response(
        self, conn: UpstreamConnection, data: bytes, drop: i64, stop: i64
    ) -> bool:
        """A whole plain response (proxy.simplehead read it: status >= 200 with a reason
        phrase, a Content-Length body, at most a `Connection` line at data[drop:stop] to
        leave out) sent on as it came when the client needs nothing added to it, as most do:
        what `on_response_head` and `on_response_body` would send, without cutting it into
        lines. False, with nothing done, otherwise."""
        ex = self.queue[0]
        if (
            not ex.keep_alive
            or ex.close_after
            or ex.upgrade
            or ex.http10
            or not ex.done
            or self.state.draining
        ):
            return False  # (`on_response_head` adds `connection: close`, or `keep-alive`)
        ex.responded = True
        ex.status = conn.status
        out = self.out
        if drop < 0:
            out.append(data)
        else:
            out.append(data[:drop])
            out.append(data[stop:])
        return True

    def on_response_body(self, data: bytes) -> None:
        ex = self.queue[0]
        self.out.append(http1.chunk(data) if ex.resp_chunked else data)
        self.deadline = self.state.now + self.response_timeout

    def on_response_end(self, conn: UpstreamConnection) -> None:
        ex = self.queue[0]
        if ex.resp_chunked:
            self.out.append(http1.LAST_CHUNK)
        # The response is whole: it goes out before the bookkeeping below (the pool, the
        # counters, the next request's start), which the client need not wait for.
        self._write_out()
        self.upstream = ex.conn = None
        if self.write_paused and conn.flow is not None:
            conn.flow.resume(PEER_BUSY)
        if ex.done:
            self.pool.release(conn)
        else:  # answered before the request body was read: that connection is spent
            conn.close()
            ex.close_after = True
            ex.discard = True
        flow = self.flow
        if flow is not None and flow.reasons & PEER_BUSY:  # (checked here: once per response)
            flow.resume(PEER_BUSY)
            if not self.write_paused:
                self.stall_at = 0.0
        self._finish(ex)

    def on_tunnel_data(self, data: bytes) -> None:
        self.out.append(data)
        self.tunnel_at = self.state.now

    def on_upstream_lost(self, conn: UpstreamConnection) -> None:
        self.upstream = None
        if self.tunnel is conn:
            self.tunnel = None
            self._close_when_flushed()
            return
        if not self.queue or self.transport is None:
            return
        ex = self.queue[0]
        ex.conn = None
        self.flow.resume(PEER_BUSY)  # type: ignore[union-attr]
        if not self.write_paused:
            self.stall_at = 0.0
        if ex.responded:  # mid-body: the client must see a broken response, not a short one
            self.flush()
            self.transport.abort()
            return
        if self._retry(ex, conn):
            return
        self.stats.error("reset")
        self._reply(ex, local_reply(502, "upstream-reset"))
        self.flush()

    def _retry(self, ex: Exchange, conn: UpstreamConnection) -> bool:
        """A pooled connection the upstream had closed: resend a body-less request once."""
        if ex.retried or conn.requests < 2 or conn.got_bytes or not ex.done or ex.chunked:
            return False
        if any(name == b"content-length" for name, _ in ex.pairs()):
            return False
        ex.retried = True
        route = ex.route
        assert route is not None
        self.flow.pause(CONNECTING)  # type: ignore[union-attr]
        self.state.spawn(self._connect(ex, route))
        return True

    def on_upstream_busy(self, busy: bool) -> None:
        flow = self.flow
        if flow is None:
            return
        if busy:
            if not self._backpressured():
                self._hold()
            flow.pause(PEER_BUSY)
        else:
            flow.resume(PEER_BUSY)
            self._release()

    # --- back-pressure and deadlines (see the module docstring) ---------------------------------

    def _backpressured(self) -> bool:
        """Reading is paused on either side because the other side is not taking its bytes."""
        flow = self.flow
        return self.write_paused or (flow is not None and flow.reasons & PEER_BUSY != 0)

    def _held(self, kind: int) -> bool:
        """Whether the peer deadline `kind` waits on is silent because the proxy stopped
        reading it: the client's body while the app takes none of it (reading the client is
        paused), the upstream's response while the client takes none of it (reading the
        upstream is paused); the response also while the request is still queued for the app."""
        flow = self.flow
        app_full = flow is not None and flow.reasons & PEER_BUSY != 0
        if kind == BODY:
            return app_full
        if kind == RESPONSE:
            return app_full or self.write_paused
        return kind == STREAM and self.write_paused

    def _hold(self) -> None:
        """Back-pressure begins: start the stall clock. (A tunnel's deadline may be its idle
        bound, an hour away: it is brought forward to the first look at the stall.)"""
        now = self.stall_at = self.state.now
        self.stall_bytes = self._queued_bytes()
        if self.deadline_kind == TUNNEL:
            self.deadline = min(self.deadline, now + self.idle_timeout / 4)

    def _release(self) -> None:
        """Back-pressure ended on one side: a deadline it held restarts in full (its peer had
        no chance to speak); the stall clock stops once neither side is held."""
        if not self._backpressured():
            self.stall_at = 0.0
        kind = self.deadline_kind
        if self._held(kind):
            return
        if kind == BODY:
            self.deadline = self.state.now + self.body_timeout
        elif kind in (RESPONSE, STREAM):
            self.deadline = self.state.now + self.response_timeout

    def _queued_bytes(self) -> int:
        """Bytes written and not yet taken by the client and by the upstream (in a tunnel,
        only by a peer that is not reading: `_tunnel_queued`)."""
        tunnel = self.tunnel
        if tunnel is not None:
            return self._tunnel_queued(tunnel)
        queued = 0
        if self.transport is not None:
            queued = self.transport.get_write_buffer_size()
        up = self.upstream
        if up is not None and up.transport is not None:
            queued += up.transport.get_write_buffer_size()
        return queued

    def _postpone(self, now: float) -> bool:
        """A deadline came due while its peer was held (or, lingering, while the client still
        had bytes to read): move it towards the stall bound, the idle timeout after the peers
        last took any bytes; False once that bound has passed. Progress is seen only when
        this looks, so it looks four times per idle timeout: a peer is cut off between one and
        one and a quarter idle timeouts after it last read."""
        queued = self._queued_bytes()
        if self.stall_at == 0.0 or queued < self.stall_bytes:
            self.stall_at = now  # (the first look, or a peer took some: progress)
        self.stall_bytes = queued
        until = self.stall_at + self.idle_timeout
        if until <= now:
            return False
        self.deadline = min(until, now + self.idle_timeout / 4)
        return True

    def _time_out(self, now: float, status: int, reason: str, kind: str) -> None:
        """The exchange in flight gets a local reply instead of its response; the connection
        closes after it."""
        ex = self.queue[0]
        if ex.conn is not None:
            ex.conn.abort()
            self.upstream = ex.conn = None
        self.stats.error(kind)
        self.queue.clear()
        self.out.append(local_reply(status, reason, close=True).data)
        self._ended(ex, status, reason, (now - ex.started_at) * 1000.0)
        self._close_when_flushed()

    def _stalled(self, now: float) -> None:
        """A peer has taken none of the bytes queued for it for the idle timeout."""
        if self.write_paused:  # the client is not reading: it could not read an answer either
            self.stats.error("client-stalled")
            self._cut_off()
        elif self.queue and not self.queue[0].responded:  # the app is not reading the request
            self._time_out(now, 504, "upstream-timeout", "upstream-stalled")
        else:
            self.stats.error("upstream-stalled")
            self._cut_off()

    def _cut_off(self) -> None:
        """Abort both sides: a response begun must not look whole (`connection_lost` counts
        it as aborted)."""
        if self.upstream is not None:
            self.upstream.abort()
            self.upstream = None
        if self.tunnel is not None:
            self.tunnel.abort()
            self.tunnel = None
        self.flush()
        if self.transport is not None:
            self.transport.abort()

    def flush(self) -> None:
        self._write_out()
        if self.upstream is not None:
            self.upstream.flush()

    def _write_out(self) -> None:
        """What is pending for the client, in one write (`proxy.lists.drained`), taken before
        the write, so that what is appended meanwhile (a callback of the transport) waits for
        the next one."""
        data, self.out = drained(self.out)
        if len(data) and self.transport is not None:
            self.send(data)

    def _open_tunnel(self, conn: UpstreamConnection) -> None:
        ex = self.queue[0]
        self._ended(ex, 101, ex.reason, (monotonic() - ex.started_at) * 1000.0)
        self.tunnel, self.upstream = conn, None
        self.tunnel_request = ex
        self.queue.clear()
        early = b"".join(self.tunnel_pending)
        self.tunnel_pending.clear()
        if early:
            conn.write_raw(early)
        now = self.tunnel_at = self.state.now
        limit = self.tunnel_idle_timeout
        self.deadline_kind = TUNNEL
        self.deadline = now + limit if limit > 0 else FAR
        if self._backpressured():  # (the client stopped reading before the 101)
            self.deadline = min(self.deadline, now + self.idle_timeout / 4)
        self.flow.resume(UPGRADE)  # type: ignore[union-attr]

    def _tunnel_in(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.write_raw(data)
            self.tunnel_at = self.state.now
        else:
            self.tunnel_pending.append(data)

    def _tunnel_queued(self, tunnel: UpstreamConnection) -> int:
        """Bytes queued in a tunnel for the peers that are not reading: the client while its
        writes are paused, the upstream while reading the client is paused for it. (Not the
        other peer's: a client that stops reading and goes on sending must not pass for one
        that reads because the app takes what it sends.)"""
        queued = 0
        transport = self.transport
        if self.write_paused and transport is not None:
            queued = transport.get_write_buffer_size()
        flow = self.flow
        up = tunnel.transport
        if flow is not None and flow.reasons & PEER_BUSY != 0 and up is not None:
            queued += up.get_write_buffer_size()
        return queued

    def _tunnel_due(self, now: float) -> None:
        """A tunnel's deadline came: a peer held by back-pressure for the idle timeout is cut
        off (`_stalled`); a tunnel silent both ways for the tunnel idle timeout is closed;
        otherwise the next look is set."""
        if self._backpressured():
            if not self._postpone(now):
                self._stalled(now)
            return
        limit = self.tunnel_idle_timeout
        if limit <= 0:
            self.deadline = FAR
            return
        until = self.tunnel_at + limit
        if until > now:
            self.deadline = until
            return
        self.stats.error("tunnel-idle")
        self.cut_tunnel()

    # --- policy changes (proxy.tunnels) ---------------------------------------------------------

    def upgrade_request(self) -> Exchange | None:
        """The upgrade request this connection's tunnel was opened for, or the one forwarded
        and waiting for its 101 (the tunnel it may become was authorized on it too); None
        when there is neither."""
        if self.tunnel is not None:
            return self.tunnel_request
        queue = self.queue
        if queue:
            ex = queue[0]
            if ex.upgrade and ex.route is not None and not ex.responded:
                return ex
        return None

    def cut_tunnel(self) -> None:
        """End the tunnel (or the upgrade waiting for its 101), for a policy change that no
        longer allows it or after the tunnel idle timeout: both sides stop reading now, and
        nothing more goes either way (an upgrade not yet answered is aborted upstream: the app
        must not switch for it). What each side had already taken in is flushed for up to
        LINGER_SECONDS, then both are aborted, so a peer that stopped reading cannot keep a
        revoked or idle tunnel open."""
        ends: list[asyncio.Transport] = []
        tunnel, self.tunnel = self.tunnel, None
        upstream, self.upstream = self.upstream, None
        self.tunnel_pending.clear()
        if tunnel is not None:
            tunnel.close()
            if tunnel.transport is not None:
                ends.append(tunnel.transport)
        if upstream is not None:
            upstream.abort()
            if self.queue:
                self.queue[0].conn = None
        self._set_deadline(NONE, 0)
        self._write_out()
        transport = self.transport
        if transport is not None:
            transport.close()
            ends.append(transport)
        if ends:
            asyncio.get_running_loop().call_later(LINGER_SECONDS, abort_all, ends)


def abort_all(transports: list[asyncio.Transport]) -> None:
    """Abort what a closing connection still holds, once its grace has passed."""
    for transport in transports:
        transport.abort()  # (a no-op for one already gone)
