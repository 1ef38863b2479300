"""Unversioned hub of specs.smi-spec.io: HTTPRouteGroup, TCPRoute, UDPRoute.

Headers are normalised here: both wire forms (a list of single-key maps, and a map) become one
tuple of (lower-case name, value regex) pairs in document order, with `:authority` as `host`
(`header_name`). TCP/UDP `ports` () means all ports, which is also what the port-less TCPRoute
of specs v1alpha1–v1alpha3 means, and what a v1alpha4 `spec` without `matches.ports` means.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from smi.apis.meta import ObjectMeta

GROUP = "specs.smi-spec.io"

HTTP_METHODS = ("*", "GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")

# HTTP/2's `:authority` pseudo-header is what HTTP/1.1 carries as Host (RFC 9113 §8.3.1), and
# OSM reads one as the other (SPEC.md §3.1). A request reaches the proxy over HTTP/1.1, so a
# condition on `:authority` can only mean its Host header.
AUTHORITY = ":authority"


def header_name(name: str) -> str:
    """The hub's name for a header name as written: lower-case, `:authority` as `host`. One
    function for the converters and the compiler, so that the MeshPolicy a proxy matches
    with, Rego policies and explanations all see the name a request carries."""
    lowered = name.lower()
    return "host" if lowered == AUTHORITY else lowered


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HTTPMatch(_Frozen):
    """One named match. None = the field was absent (any path / any method / no header
    condition); kept apart from () so that a round trip is exact."""

    name: str
    path_regex: str | None = None
    methods: tuple[str, ...] | None = None
    headers: tuple[tuple[str, str], ...] | None = None


class HTTPRouteGroup(_Frozen):
    kind: Literal["HTTPRouteGroup"] = "HTTPRouteGroup"
    metadata: ObjectMeta
    matches: tuple[HTTPMatch, ...] = ()


class TCPRoute(_Frozen):
    """`ports` () = every port. `has_matches` records whether the wire object had a `spec`
    (v1alpha3's empty one; v1alpha4's `matches` block, which a v1alpha4 `spec` without one
    stands for) so that converting back gives a `spec` where there was one."""

    kind: Literal["TCPRoute"] = "TCPRoute"
    metadata: ObjectMeta
    ports: tuple[int, ...] = ()
    has_matches: bool = True


class UDPRoute(_Frozen):
    kind: Literal["UDPRoute"] = "UDPRoute"
    metadata: ObjectMeta
    ports: tuple[int, ...] = ()
    has_matches: bool = True


SpecsHub = HTTPRouteGroup | TCPRoute | UDPRoute
