"""Unversioned hub of specs.smi-spec.io: HTTPRouteGroup, TCPRoute, UDPRoute.

Headers are normalised here: both wire forms (a list of single-key maps, and a map) become one
tuple of (lower-case name, value regex) pairs in document order. TCP/UDP `ports` () means all
ports, which is also what the port-less TCPRoute of specs v1alpha1–v1alpha3 means.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from smi.apis.meta import ObjectMeta

GROUP = "specs.smi-spec.io"

HTTP_METHODS = ("*", "GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


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
    """`ports` () = every port. `has_matches` records whether the wire object had a
    `matches` block (v1alpha4) so that converting back gives the same object."""

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
