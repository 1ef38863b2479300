"""The two pure decisions every enforcement point makes: `authorize` and `pick_backend`.

The proxy, `smictl explain`, the webhook's Data API and the conformance suite all call these
functions over a `PolicyIndex`, so SMI semantics (DESIGN.md §3) live here once:

- default deny; TrafficTargets only allow, several for one destination are a union;
- a TCPRoute rule allows any traffic (HTTP included) to its ports, a UDPRoute rule UDP only;
- an HTTP request is allowed when some HTTP match of the caller's rules matches it
  (method AND path AND headers within a match, OR across matches);
- audit mode enforces nothing but records what deny mode would have decided; permissive mode
  allows everything.

Order of checks, cheapest first: identity, destination, source (dict lookups), port (set
lookup), method (dict lookup), header presence, and only then RE2 regexes.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from typing import NamedTuple

from smi.compiler.ir.decision import Decision, Protocol, Reason, denied
from smi.compiler.ir.index import HttpEntry, IndexedSplit, PolicyIndex, PortGrant, SourceView
from smi.compiler.ir.matching import path_readings, request_path
from smi.compiler.ir.model import Mode, Split

__all__ = ["Decision", "Reason", "Request", "authorize", "pick_backend"]

_NO_HEADERS: Mapping[str, str] = {}


class Request(NamedTuple):
    """The parts of an HTTP request a match looks at. Header names are lower-case."""

    method: str
    path: str
    headers: Mapping[str, str]


def authorize(  # noqa: PLR0917 - the positional order is the contract callers code against
    index: PolicyIndex,
    source: str | None,
    destination: str,
    port: int,
    method: str | None = None,
    path: str | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    protocol: Protocol = "http",
) -> Decision:
    """May `source` (a SPIFFE id from a verified certificate, None if the caller had none) do
    this to `destination` on `port`? `headers` maps lower-case names to values. With
    protocol "tcp" (method None) this is an L4 connection check, "udp" a datagram check.
    A missing method or path is "" (only any-method / any-path matches accept it)."""
    mode = index.mode
    if mode == "permissive":
        return index.permissive
    view = _source_view(index, source, destination)
    if isinstance(view, Decision):
        return view
    if protocol == "udp":
        return _l4(view, port, mode=mode, own=view.udp, others=(view.tcp, view.http), name="udp")
    tcp_origin = view.tcp.lookup(port)
    if tcp_origin is not None:  # a TCPRoute rule allows any traffic, HTTP included
        return view.tcp_allow[tcp_origin]
    if protocol == "tcp" and method is None:
        return _l4(view, port, mode=mode, own=view.tcp, others=(view.http, view.udp), name="tcp")
    return _http(view, port, method or "", path or "", headers or _NO_HEADERS, mode=mode)


def _source_view(index: PolicyIndex, source: str | None, destination: str) -> SourceView | Decision:
    """What `source` may do to `destination`, or the deny when it may do nothing."""
    mode = index.mode
    if source is None:
        return denied(mode=mode, reason="no-identity", detail="the caller presented no identity")
    dest = index.destinations.get(destination)
    if dest is None:
        return denied(
            mode=mode, reason="no-traffic-target", detail=f"no TrafficTarget for {destination}"
        )
    view = dest.by_source.get(source)
    if view is None:
        return denied(
            mode=mode,
            reason="source-not-allowed",
            rules=dest.origins,
            detail=f"{source} is not a source of any TrafficTarget for {destination}",
        )
    return view


def _l4(
    view: SourceView,
    port: int,
    *,
    mode: Mode,
    own: PortGrant,
    others: tuple[PortGrant, ...],
    name: str,
) -> Decision:
    origin = own.lookup(port)
    if origin is not None:
        return (view.udp_allow if name == "udp" else view.tcp_allow)[origin]
    if any(g.lookup(port) is not None for g in others):
        return denied(
            mode=mode,
            reason="protocol-not-allowed",
            rules=view.origins,
            detail=f"port {port} is open to this source, but not for {name}",
        )
    return _port_denied(view, port, mode)


def _port_denied(view: SourceView, port: int, mode: Mode) -> Decision:
    return denied(
        mode=mode,
        reason="port-not-allowed",
        rules=view.origins,
        detail=f"no rule for this source covers port {port}",
    )


def _http(
    view: SourceView, port: int, method: str, path: str, headers: Mapping[str, str], *, mode: Mode
) -> Decision:
    if view.http.lookup(port) is None:
        if view.udp.lookup(port) is not None:
            return denied(
                mode=mode,
                reason="protocol-not-allowed",
                rules=view.origins,
                detail=f"port {port} is open to this source for udp only",
            )
        return _port_denied(view, port, mode)
    readings = path_readings(path)
    path = request_path(path)
    entry = _first_match(view, port, method, path, headers)
    if entry is not None:
        # Allowed only if every other reading of an ambiguous path is (see `path_readings`).
        for reading in readings:
            if reading != path and _first_match(view, port, method, reading, headers) is None:
                return denied(
                    mode=mode,
                    reason="no-route-match",
                    rules=view.origins,
                    detail=f"no HTTP match for {method or '-'} {reading} (as an application"
                    f" may read {path}) on port {port}",
                )
        return entry.allow
    return denied(
        mode=mode,
        reason="no-route-match",
        rules=view.origins,
        detail=f"no HTTP match for {method or '-'} {path or '-'} on port {port}",
    )


def _first_match(
    view: SourceView, port: int, method: str, path: str, headers: Mapping[str, str]
) -> HttpEntry | None:
    for entry in view.http_candidates(method):
        if entry.ports is not None and port not in entry.ports:
            continue
        if entry.matcher.matches(method, path, headers):
            return entry
    return None


def pick_backend(split: Split, request: Request | None, r: float) -> str | None:
    """The backend ("ns/name") for a request to the split's root, given `r` uniform in [0, 1).

    None when the split has matches and the request matches none of them (or is not HTTP):
    the caller then sends it to the root service as if no split existed. Backends are chosen
    by bisection over cumulative weights; a weight-0 backend is never picked."""
    indexed = split if isinstance(split, IndexedSplit) else IndexedSplit.of(split)
    if indexed.matchers:
        if request is None:
            return None
        path = request_path(request.path)
        if not any(m.matches(request.method, path, request.headers) for m in indexed.matchers):
            return None
    if indexed.total <= 0:
        return None
    # r clamped to [0, 1] (compared, not min/max: this runs for every request to a split)
    target = (0.0 if r < 0.0 else 1.0 if r > 1.0 else r) * indexed.total
    i = bisect_right(indexed.cumulative, target)
    if i >= len(indexed.backends):  # r == 1.0: the last backend with a positive weight
        i = bisect_right(indexed.cumulative, indexed.total - 1)
    return indexed.backends[i].service
