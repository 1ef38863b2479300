"""L4 relays: ports that only TCPRoutes cover are proxied as bytes, authorized at connect and
again whenever the policy changes (and so are connections that protocol detection, in
permissive and audit mode, finds are not HTTP on a port no rule covers: proxy.detect).

Inbound, the caller's verified identity is authorized with `protocol="tcp"` as soon as the TLS
handshake completes; a denied connection is closed before a byte reaches the app. A relay can
live for hours (a caller's outbound proxy pools it and sends request after request over it), so
authorizing once is not enough: traffic is allowed only while a TrafficTarget says so (DESIGN.md
§3). When a new policy is swapped in, `recheck_relays` asks the same question of every open
inbound relay, off the request path, and closes those whose caller is no longer allowed, and
those on a port that HTTP rules now cover (the caller's next connection then gets HTTP
handling, with the identity header stated by the proxy). Outbound, a local port maps to one
service: the split (if any) and an endpoint are chosen per connection, and the bytes go over
mTLS to that endpoint's proxy, which enforces the policy (so the outbound end needs no re-check:
when the inbound end closes, the outbound relay closes with it). Each direction pauses reading
while the other side's write buffer is above high water.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final, Literal, cast

from proxy.detect import Detect
from proxy.flow import CONNECTING, HIGH_WATER, LOW_WATER, PEER_BUSY, FlowControl
from proxy.http1 import Reply
from proxy.metrics import DirectionStats
from proxy.relay import FAR, abort_all
from proxy.routing import InboundRouter, OutboundRouter
from proxy.state import ServerState
from proxy.upstream import Target, dial, peer_spiffe_id
from smi.compiler.ir.decide import Decision, authorize
from smi.compiler.ir.index import PolicyIndex

log = logging.getLogger("smictl.proxy.tcp")

# How long a relay closed by a policy change may take to hand on what it had already taken in
# (while the caller was still allowed) before both of its connections are cut: a peer that
# stopped reading must not keep a revoked relay open.
CLOSE_GRACE: Final = 2.0

# What a policy change means for an open inbound relay (`recheck`). The two closing verdicts
# are also the `reason` labels under which the closures are counted, in
# `inbound_tcp_authz_deny_total` (and `revoked` in `..._would_deny_total` in audit mode).
Verdict = Literal["keep", "would-deny", "revoked", "protocol-changed"]


def recheck(
    index: PolicyIndex, *, source: str | None, destination: str, port: int
) -> tuple[Verdict, Decision]:
    """May a relay that `source` opened to `destination` on `port` go on under `index`?

    First the decision made at connect (`authorize` with protocol "tcp"), again: "revoked" when
    it now denies. Then, whatever the mode, "protocol-changed" when HTTP rules now cover the
    port (`PolicyIndex.port_protocol` would say "http" to a new connection): bytes relayed as
    they are would reach an app that reads HTTP there without the proxy's
    `x-smi-source-identity`, and with any copy the caller wrote. Then "would-deny" when only
    audit mode lets it through (also when nothing covers the port any more: audit enforces
    nothing), else "keep"."""
    decision = authorize(index, source, destination, port, protocol="tcp")
    if not decision.allowed:
        return "revoked", decision
    dest = index.destination(destination)
    if dest is not None and dest.http.lookup(port) is not None:
        return "protocol-changed", decision
    if decision.would_deny:
        return "would-deny", decision
    return "keep", decision


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
            # Still connecting, the bytes so far held in `pending`: stay open for the answer
            # when this side can (`link` passes the end on after them); else close, and
            # `_deliver_after_eof` still sends them.
            return self.transport is not None and self.transport.can_write_eof()
        if other.eof or not other.transport.can_write_eof():
            other.transport.close()
            return None
        other.transport.write_eof()
        # Keep our side open for the answer (a half-close, over TCP or the mesh's TLS).
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
        far = other.transport
        if self.eof and far is not None:  # (it ended its side while we were connecting)
            if far.can_write_eof():
                far.write_eof()
            else:
                far.close()

    def on_deadline(self, now: float) -> None:
        return None

    def shutdown(self) -> None:
        return None  # streams are not cut short on drain; the drain timeout bounds them

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Relay(Pipe):
    """The downstream end: counts itself and opens the upstream end."""

    def __init__(self, *, state: ServerState, stats: DirectionStats, timeout: float) -> None:
        super().__init__()
        self.state, self.stats, self.timeout = state, stats, timeout
        self.revoked = False  # closed by a policy change: nothing more goes either way

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
                transport, protocol = await dial(Pipe, target, ctx)
        except (OSError, TimeoutError) as exc:
            self.stats.error("connect")
            # (asyncio.timeout's TimeoutError, and some OSErrors, print as nothing at all.)
            why = str(exc) or (
                f"no connection within {self.timeout:g}s"
                if isinstance(exc, TimeoutError)
                else type(exc).__name__
            )
            log.warning("tcp: cannot connect to %s:%d: %s", target.host, target.port, why)
            self.close()
            return
        if target.identity is not None and peer_spiffe_id(transport) != target.identity:
            self.stats.error("identity")
            cast(asyncio.Transport, transport).abort()
            self.close()
            return
        if self.transport is None or self.revoked:
            self._deliver_after_eof(transport)
            return
        self.link(cast(Pipe, protocol))

    def _deliver_after_eof(self, transport: asyncio.BaseTransport) -> None:
        """The downstream side closed while the upstream one was connecting. If it ended
        cleanly (EOF), what it sent before is still owed to the far end — a client that writes
        and closes at once must not lose its bytes to the race with our connect; after an
        error, or a policy change that revoked the relay, nothing is sent."""
        far = cast(asyncio.Transport, transport)
        if self.eof and self.pending and not self.revoked:
            far.write(b"".join(self.pending))
        self.pending.clear()
        far.close()  # after the write is flushed

    def cut(self) -> None:
        """End the relay for a policy change: both ends stop reading now and are unlinked, so
        nothing read from here on goes anywhere (bytes still waiting for the app connection are
        dropped); what each end had already accepted is flushed, for up to CLOSE_GRACE seconds,
        and then both are aborted."""
        self.revoked = True
        far, self.other = self.other, None
        if far is not None:
            far.other = None
        self.pending.clear()
        ends = [p.transport for p in (self, far) if p is not None and p.transport is not None]
        for end in ends:
            end.close()
        asyncio.get_running_loop().call_later(CLOSE_GRACE, abort_all, ends)


class InboundTcp(_Relay):
    """mTLS from a peer proxy → authorize at connect, and again at every policy change → the
    local app."""

    def __init__(self, *, router: InboundRouter, state: ServerState, timeout: float) -> None:
        super().__init__(state=state, stats=router.stats, timeout=timeout)
        self.router = router
        # Per-connection state, for `policy_changed`: the caller, the rules that let it in
        # (for the log), whether it was let in, and whether audit mode already counted it.
        self.peer: str | None = None
        self.allowed_by: tuple[str, ...] = ()
        self.admitted = False
        self.audited = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = self.peer = self.router.peers.of(transport)
        decision = self.router.decide(peer, protocol="tcp", ex=None)
        if decision is None or not decision.allowed:
            self.close()
            return
        self.admitted = True
        if decision.would_deny:
            # Let in only because audit mode enforces nothing: `decide` has just counted and
            # logged the would-deny, and its rules are those that would have applied, not
            # rules that let it in. A later policy that still would deny it is no news.
            self.audited = True
        else:
            self.allowed_by = decision.rules
        self.flow.pause(CONNECTING)  # type: ignore[union-attr]
        self.state.spawn(self._open(self.router.app))

    def policy_changed(self, index: PolicyIndex) -> bool:
        """Re-check this relay against a new policy (`recheck`); True when it was closed.
        Audit mode counts and logs a relay that deny mode would close once, when it turns so
        (not again at every later policy that still would), and leaves it open."""
        transport = self.transport
        if not self.admitted or self.revoked or transport is None or transport.is_closing():
            return False  # (denied at connect, or already on its way out)
        router = self.router
        verdict, decision = recheck(
            index, source=self.peer, destination=router.identity, port=router.app_port
        )
        if verdict == "keep":
            self.audited = False
            return False
        if verdict == "would-deny":
            if not self.audited:
                self.audited = True
                router.metrics.would_deny("tcp", self.allowed_by, "revoked")
                self._log("audit: would close", "revoked", decision, level=logging.WARNING)
            return False
        deny = router.metrics.authz_deny["tcp"]
        deny[verdict] = deny.get(verdict, 0) + 1
        self._log("closing", verdict, decision)
        self.cut()
        return True

    def _log(
        self, what: str, verdict: Verdict, decision: Decision, *, level: int = logging.INFO
    ) -> None:
        """One line per relay closed (or, audit mode, that would be): the caller, the port,
        why, and the rules that had let it in. Audit lines are warnings, as for requests."""
        port = self.router.app_port
        why = (
            f"HTTP rules cover port {port} now: new connections get HTTP handling"
            if verdict == "protocol-changed"
            else f"{decision.reason}: {decision.detail or '-'}"
        )
        log.log(
            level,
            "tcp: %s relay from %s to port %d after a policy change: %s (%s); allowed at "
            "connect by %s",
            what,
            self.peer or "-",
            port,
            verdict,
            why,
            ",".join(self.allowed_by) or "-",
        )


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
    """Picks HTTP or L4 handling for an inbound connection once the peer is known, or, where
    the policy leaves it to the caller's first bytes, protocol detection (proxy.detect)."""

    def __init__(
        self,
        *,
        router: InboundRouter,
        state: ServerState,
        http: Callable[[], asyncio.BaseProtocol],
        tcp: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        self.router, self.state, self.http, self.tcp = router, state, http, tcp

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = self.router.peers.of(transport)
        protocol = self.router.protocol_for(peer)
        proto: asyncio.BaseProtocol
        if protocol == "detect":
            proto = Detect(router=self.router, state=self.state, http=self.http, tcp=self.tcp)
        else:
            proto = self.tcp() if protocol == "tcp" else self.http()
        transport.set_protocol(proto)
        proto.connection_made(transport)


def recheck_relays(state: ServerState, index: PolicyIndex) -> None:
    """A new policy is in use: re-check every open inbound relay (`InboundTcp.policy_changed`).
    Runs once per policy swap (`PolicyHolder.on_change`), never per request or per byte."""
    for conn in list(state.connections):
        if isinstance(conn, InboundTcp):
            conn.policy_changed(index)
