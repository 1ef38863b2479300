"""Upgraded connections (WebSocket and the like) under a policy change: authorized again, and
ended when the new policy no longer allows them.

An inbound upgrade request is authorized like any request (proxy.routing), and after the 101
both sides are a byte tunnel (proxy.relay) that can stay open for hours. Authorizing once is
not enough: traffic is allowed only while a TrafficTarget says so (DESIGN.md §3). So when a new
policy is swapped in (`PolicyHolder.on_change`), `TunnelChecks` asks of every open inbound
tunnel — and of every upgrade forwarded and still waiting for its 101, which would otherwise
become a tunnel nobody checked — the question its upgrade request was asked: the caller's
identity, this port, the method, the path and the headers as the request went to the app
(`InboundRouter.reauthorize`). Once per swap, never per request or per byte.

- denied now (deny mode) — the tunnel is closed on both sides (`cut_tunnel`), counted in
  `inbound_http_authz_deny_total{reason="revoked"}`, logged once at info;
- audit mode, would be denied now and was not under the previous policy — counted once in
  `inbound_http_authz_would_deny_total{rule=<what let it in, joined with ",">,reason="revoked"}`,
  logged as a warning, kept open;
- anything else (allowed, permissive) — kept.

The previous policy is what let the tunnel in, or kept it at the last swap: its decision names
the TrafficTarget for the log and the audit counter, and says whether audit mode already
counted the tunnel (so it is counted when it turns so, not at every later policy that still
would deny it), without any state on the connection.

Outbound tunnels need no check: the destination's inbound proxy decides, and when it closes its
end, the outbound proxy's tunnel (its upstream) ends and it closes the app's connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from proxy.routing import InboundPeer, InboundRouter
from proxy.server import HttpProxy
from proxy.state import ServerState
from smi.compiler.ir.decide import Decision
from smi.compiler.ir.index import PolicyIndex

log = logging.getLogger("smictl.proxy.tunnels")

# How much of a path a log line shows (a path may be as long as the header limit).
_PATH_SHOWN = 200


class TunnelChecks:
    """The `PolicyHolder.on_change` hook for tunnels: it remembers each index it is given, so
    that at the next swap it knows the policy the open tunnels were let in or kept under."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.previous: PolicyIndex | None = None

    def __call__(self, index: PolicyIndex) -> None:
        previous, self.previous = self.previous, index
        recheck_tunnels(self.state, index, previous=previous)


def recheck_tunnels(state: ServerState, index: PolicyIndex, *, previous: PolicyIndex | None) -> int:
    """Re-check every inbound tunnel (and upgrade waiting for its 101) of `state` against
    `index`; `previous` is the policy in use before it. Returns how many were closed."""
    closed = 0
    for conn in list(state.connections):
        if isinstance(conn, HttpProxy) and policy_changed(conn, index, previous=previous):
            closed += 1
    return closed


def policy_changed(conn: HttpProxy, index: PolicyIndex, *, previous: PolicyIndex | None) -> bool:
    """Re-check the tunnel of `conn`, if it is an inbound connection with one, under `index`;
    True when the tunnel was closed."""
    router = conn.router
    if not isinstance(router, InboundRouter) or conn.transport is None:
        return False  # (outbound: the destination's proxy decides; or already closed)
    ex = conn.upgrade_request()
    if ex is None:
        return False
    peer = conn.peer.identity if isinstance(conn.peer, InboundPeer) else None
    decision = router.reauthorize(index, peer, ex)
    if decision.allowed and not decision.would_deny:
        return False
    before = None if previous is None else router.reauthorize(previous, peer, ex)
    # (A would-deny's rules are those that would have applied: none of them let it in.)
    let_in_by = () if before is None or before.would_deny else before.rules
    line = _Line(
        peer=peer,
        port=router.app_port,
        what=f"{ex.method_str} {ex.path_str[:_PATH_SHOWN]}",
        decision=decision,
        let_in_by=let_in_by,
    )
    if decision.would_deny:
        if before is None or not before.would_deny:  # (already counted if it was)
            router.metrics.would_deny("http", let_in_by, "revoked")
            line.log("audit: would close", logging.WARNING)
        return False
    deny = router.metrics.authz_deny["http"]
    deny["revoked"] = deny.get("revoked", 0) + 1
    line.log("closing", logging.INFO)
    conn.cut_tunnel()
    return True


@dataclass(frozen=True, slots=True)
class _Line:
    """One log line per tunnel closed (or, audit mode, that would be): the caller, the port,
    the upgrade request, why, and the rules that had let it in. Audit lines are warnings, as
    for requests."""

    peer: str | None
    port: int
    what: str
    decision: Decision
    let_in_by: tuple[str, ...]

    def log(self, action: str, level: int) -> None:
        log.log(
            level,
            "tunnel: %s tunnel from %s to port %d (upgrade %s) after a policy change: revoked "
            "(%s: %s); allowed before by %s",
            action,
            self.peer or "-",
            self.port,
            self.what,
            self.decision.reason,
            self.decision.detail or "-",
            ",".join(self.let_in_by) or "-",
        )
