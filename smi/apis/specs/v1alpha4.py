"""specs.smi-spec.io/v1alpha4 (latest released): HTTPRouteGroup under `spec.matches`;
TCPRoute and UDPRoute with `spec.matches.ports` (`[]` = every port).

This version holds every hub field, so nothing rides in the lossy-fields annotation.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from smi.apis import lossy
from smi.apis.meta import ObjectMeta
from smi.apis.specs import hub
from smi.apis.specs.common import (
    GROUP_NARROWING,
    ROUTE_NARROWING,
    HeaderMatch,
    PortSpec,
    build_group,
    header_match,
    matches_to_hub,
    port_spec,
)
from smi.apis.trusted import hub_builder
from smi.apis.wire import WireModel, WireObject

VERSION = "v1alpha4"
_tcp = hub_builder(hub.TCPRoute, defaulted=("kind",))
_udp = hub_builder(hub.UDPRoute, defaulted=("kind",))
API_VERSION: Final = "specs.smi-spec.io/v1alpha4"


class HTTPRouteGroupSpec(WireModel):
    matches: list[HeaderMatch]


class HTTPRouteGroup(WireObject):
    hub_type = hub.HTTPRouteGroup

    api_version: Literal["specs.smi-spec.io/v1alpha4"] = Field(alias="apiVersion")
    kind: Literal["HTTPRouteGroup"]
    spec: HTTPRouteGroupSpec


class TCPRoute(WireObject):
    """The CRD makes `spec` optional but requires `spec.matches.ports` once `spec` is there;
    smictl reads a `spec` without them as every port, as the spec does (`PortSpec`)."""

    hub_type = hub.TCPRoute

    api_version: Literal["specs.smi-spec.io/v1alpha4"] = Field(alias="apiVersion")
    kind: Literal["TCPRoute"]
    spec: PortSpec | None = None


class UDPRoute(WireObject):
    hub_type = hub.UDPRoute

    api_version: Literal["specs.smi-spec.io/v1alpha4"] = Field(alias="apiVersion")
    kind: Literal["UDPRoute"]
    spec: PortSpec | None = None


def _read_group(wire: HTTPRouteGroup, meta: ObjectMeta) -> hub.HTTPRouteGroup:
    return build_group(
        kind="HTTPRouteGroup", metadata=meta, matches=matches_to_hub(wire.spec.matches)
    )


def _project_group(group: hub.HTTPRouteGroup) -> HTTPRouteGroup:
    return HTTPRouteGroup(
        apiVersion=API_VERSION,
        kind="HTTPRouteGroup",
        metadata=group.metadata,
        spec=HTTPRouteGroupSpec(matches=[header_match(m) for m in group.matches]),
    )


def _ports(spec: PortSpec | None) -> tuple[int, ...]:
    return () if spec is None else tuple(spec.matches.ports)


def _read_tcp(wire: TCPRoute, meta: ObjectMeta) -> hub.TCPRoute:
    return _tcp(
        kind="TCPRoute", metadata=meta, ports=_ports(wire.spec), has_matches=wire.spec is not None
    )


def _project_tcp(route: hub.TCPRoute) -> TCPRoute:
    spec = port_spec(route.ports, has_matches=route.has_matches)
    return TCPRoute(apiVersion=API_VERSION, kind="TCPRoute", metadata=route.metadata, spec=spec)


def _read_udp(wire: UDPRoute, meta: ObjectMeta) -> hub.UDPRoute:
    return _udp(
        kind="UDPRoute", metadata=meta, ports=_ports(wire.spec), has_matches=wire.spec is not None
    )


def _project_udp(route: hub.UDPRoute) -> UDPRoute:
    spec = port_spec(route.ports, has_matches=route.has_matches)
    return UDPRoute(apiVersion=API_VERSION, kind="UDPRoute", metadata=route.metadata, spec=spec)


def group_to_hub(wire: HTTPRouteGroup) -> hub.HTTPRouteGroup:
    return lossy.to_hub_via(wire, _read_group, _project_group, GROUP_NARROWING)


def group_from_hub(group: hub.HTTPRouteGroup) -> HTTPRouteGroup:
    return lossy.from_hub_via(group, _project_group, _read_group)


def tcp_to_hub(wire: TCPRoute) -> hub.TCPRoute:
    return lossy.to_hub_via(wire, _read_tcp, _project_tcp, ROUTE_NARROWING)


def tcp_from_hub(route: hub.TCPRoute) -> TCPRoute:
    return lossy.from_hub_via(route, _project_tcp, _read_tcp)


def udp_to_hub(wire: UDPRoute) -> hub.UDPRoute:
    return lossy.to_hub_via(wire, _read_udp, _project_udp, ROUTE_NARROWING)


def udp_from_hub(route: hub.UDPRoute) -> UDPRoute:
    return lossy.from_hub_via(route, _project_udp, _read_udp)


def to_hub(wire: HTTPRouteGroup | TCPRoute | UDPRoute) -> hub.SpecsHub:
    if isinstance(wire, HTTPRouteGroup):
        return group_to_hub(wire)
    return tcp_to_hub(wire) if isinstance(wire, TCPRoute) else udp_to_hub(wire)


def from_hub(obj: hub.SpecsHub) -> HTTPRouteGroup | TCPRoute | UDPRoute:
    if isinstance(obj, hub.HTTPRouteGroup):
        return group_from_hub(obj)
    return tcp_from_hub(obj) if isinstance(obj, hub.TCPRoute) else udp_from_hub(obj)


SERVED = (
    lossy.served(
        group=hub.GROUP,
        version=VERSION,
        kind="HTTPRouteGroup",
        wire=HTTPRouteGroup,
        read=_read_group,
        project=_project_group,
        narrowing=GROUP_NARROWING,
        flat=False,
    ),
    lossy.served(
        group=hub.GROUP,
        version=VERSION,
        kind="TCPRoute",
        wire=TCPRoute,
        read=_read_tcp,
        project=_project_tcp,
        narrowing=ROUTE_NARROWING,
        flat=False,
    ),
    lossy.served(
        group=hub.GROUP,
        version=VERSION,
        kind="UDPRoute",
        wire=UDPRoute,
        read=_read_udp,
        project=_project_udp,
        narrowing=ROUTE_NARROWING,
        flat=False,
    ),
)
