"""L4 relays: ports that only TCPRoutes cover are proxied as bytes, authorized once at connect.

Inbound, the caller's verified identity is authorized with `protocol="tcp"` as soon as the TLS
handshake completes; a denied connection is closed before a byte reaches the app. Outbound, a
local port maps to one service: the split (if any) and an endpoint are chosen per connection,
and the bytes go over mTLS to that endpoint's proxy. Each direction pauses reading while the
other side's write buffer is above high water.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from proxy import readbuf
from proxy.flow import CONNECTING, HIGH_WATER, LOW_WATER, PEER_BUSY, FlowControl
from proxy.http1 import Reply
from proxy.metrics import DirectionStats
from proxy.relay import FAR
from proxy.routing import InboundRouter, OutboundRouter
from proxy.state import ServerState
from proxy.upstream import Target, dial, peer_spiffe_id

log = logging.getLogger("smictl.proxy.tcp")


class SharedReadBuffer:
    """Mixin (first in the bases) for a protocol that has `data_received`: uvloop's TLS layer
    then reads into the shared buffer (proxy.readbuf). Its class must not derive from
    `asyncio.Protocol` (uvloop only uses `get_buffer` of protocols that do not)."""

    if TYPE_CHECKING:  # provided by the protocol it is mixed into (not defined here: the MRO)

        def data_received(self, data: bytes) -> None: ...

    def get_buffer(self, sizehint: int) -> memoryview:
        return readbuf.buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(readbuf.take(nbytes))


class Pipe(asyncio.BaseProtocol):
    """One end of a relay; `other` is the far end once both are connected."""

    deadline = FAR

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.flow: FlowControl | None = None
        self.other: Pipe | None = None
        self.pending: list[bytes] = []
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        self.flow = FlowControl(transport)
        transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)

    def data_received(self, data: bytes) -> None:
        other = self.other
        if other is not None and other.transport is not None:
            other.transport.write(data)
        else:
            self.pending.append(data)
            if self.flow is not None:
                self.flow.pause(CONNECTING)

    def eof_received(self) -> bool | None:
        self.eof = True
        other = self.other
        if other is None or other.transport is None:
            return None
        if other.eof or not other.transport.can_write_eof():
            other.transport.close()
            return None
        other.transport.write_eof()
        # Keep our side open for the answer (plain TCP only: TLS cannot stay half-open).
        return self.transport is not None and self.transport.can_write_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        other, self.other = self.other, None
        if other is not None and other.transport is not None:
            other.transport.close()

    def pause_writing(self) -> None:
        if self.other is not None and self.other.flow is not None:
            self.other.flow.pause(PEER_BUSY)

    def resume_writing(self) -> None:
        if self.other is not None and self.other.flow is not None:
            self.other.flow.resume(PEER_BUSY)

    def link(self, other: Pipe) -> None:
        self.other, other.other = other, self
        for a, b in ((self, other), (other, self)):
            if a.pending and b.transport is not None:
                b.transport.write(b"".join(a.pending))
            a.pending.clear()
            if a.flow is not None:
                a.flow.resume(CONNECTING)

    def on_deadline(self, now: float) -> None:
        return None

    def shutdown(self) -> None:
        return None  # streams are not cut short on drain; the drain timeout bounds them

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class TlsPipe(SharedReadBuffer, Pipe):
    """The far end of a relay over mTLS: reads into the shared buffer (proxy.readbuf)."""


class _Relay(Pipe):
    """The downstream end: counts itself and opens the upstream end."""

    def __init__(self, *, state: ServerState, stats: DirectionStats, timeout: float) -> None:
        super().__init__()
        self.state, self.stats, self.timeout = state, stats, timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.state.opened(self)
        self.stats.opened()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.closed(self)
        self.stats.closed()
        super().connection_lost(exc)

    async def _open(self, target: Target) -> None:
        ctx = target.tls.client_context if target.tls is not None else None
        try:
            async with asyncio.timeout(self.timeout):
                transport, protocol = await dial(Pipe if ctx is None else TlsPipe, target, ctx)
        except (OSError, TimeoutError) as exc:
            self.stats.error("connect")
            log.warning("tcp: cannot connect to %s:%d: %s", target.host, target.port, exc)
            self.close()
            return
        if target.identity is not None and peer_spiffe_id(transport) != target.identity:
            self.stats.error("identity")
            cast(asyncio.Transport, transport).abort()
            self.close()
            return
        if self.transport is None:
            self._deliver_after_eof(transport)
            return
        self.link(cast(Pipe, protocol))

    def _deliver_after_eof(self, transport: asyncio.BaseTransport) -> None:
        """The downstream side closed while the upstream one was connecting. If it ended
        cleanly (EOF), what it sent before is still owed to the far end — a client that writes
        and closes at once must not lose its bytes to the race with our connect; after an
        error nothing is sent."""
        far = cast(asyncio.Transport, transport)
        if self.eof and self.pending:
            far.write(b"".join(self.pending))
        self.pending.clear()
        far.close()  # after the write is flushed


class InboundTcp(SharedReadBuffer, _Relay):
    """mTLS from a peer proxy → authorize at connect → the local app (reads into the shared
    buffer, proxy.readbuf)."""

    def __init__(self, *, router: InboundRouter, state: ServerState, timeout: float) -> None:
        super().__init__(state=state, stats=router.stats, timeout=timeout)
        self.router = router

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = self.router.peers.of(transport)
        decision = self.router.decide(peer, protocol="tcp", ex=None)
        if decision is None or not decision.allowed:
            self.close()
            return
        self.flow.pause(CONNECTING)  # type: ignore[union-attr]
        self.state.spawn(self._open(self.router.app))


class OutboundTcp(_Relay):
    """Plain TCP from the app on a port mapped to `service` → split → mTLS to a backend."""

    def __init__(
        self, *, router: OutboundRouter, service: str, state: ServerState, timeout: float
    ) -> None:
        super().__init__(state=state, stats=router.stats, timeout=timeout)
        self.router, self.service = router, service

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        index = self.router.policy.index
        route = None if index is None else self.router.resolve(index, self.service, None)
        if route is None or isinstance(route, Reply):
            self.stats.error("no-route")
            self.close()
            return
        self.flow.pause(CONNECTING)  # type: ignore[union-attr]
        self.state.spawn(self._open(route.target))


class InboundDispatch(asyncio.Protocol):
    """Picks HTTP or L4 handling for an inbound connection once the peer is known."""

    def __init__(
        self,
        *,
        router: InboundRouter,
        http: Callable[[], asyncio.BaseProtocol],
        tcp: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        self.router, self.http, self.tcp = router, http, tcp

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = self.router.peers.of(transport)
        proto = self.tcp() if self.router.protocol_for(peer) == "tcp" else self.http()
        transport.set_protocol(proto)
        proto.connection_made(transport)
