"""specs.smi-spec.io/v1alpha2: HTTPRouteGroup (flat `matches`, now with `headers` in either
wire form) and TCPRoute (no fields at all: any raw traffic to the destination).

TCP ports (v1alpha4) ride in the lossy-fields annotation.
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
    build_group,
    header_match,
    matches_to_hub,
)
from smi.apis.wire import WireObject

VERSION = "v1alpha2"
API_VERSION: Final = "specs.smi-spec.io/v1alpha2"


class HTTPRouteGroup(WireObject):
    hub_type = hub.HTTPRouteGroup

    api_version: Literal["specs.smi-spec.io/v1alpha2"] = Field(alias="apiVersion")
    kind: Literal["HTTPRouteGroup"]
    matches: list[HeaderMatch]


class TCPRoute(WireObject):
    hub_type = hub.TCPRoute

    api_version: Literal["specs.smi-spec.io/v1alpha2"] = Field(alias="apiVersion")
    kind: Literal["TCPRoute"]


def _read_group(wire: HTTPRouteGroup, meta: ObjectMeta) -> hub.HTTPRouteGroup:
    return build_group(kind="HTTPRouteGroup", metadata=meta, matches=matches_to_hub(wire.matches))


def _project_group(group: hub.HTTPRouteGroup) -> HTTPRouteGroup:
    return HTTPRouteGroup(
        apiVersion=API_VERSION,
        kind="HTTPRouteGroup",
        metadata=group.metadata,
        matches=[header_match(m) for m in group.matches],
    )


def _read_tcp(wire: TCPRoute, meta: ObjectMeta) -> hub.TCPRoute:
    return hub.TCPRoute(metadata=meta)


def _project_tcp(route: hub.TCPRoute) -> TCPRoute:
    return TCPRoute(apiVersion=API_VERSION, kind="TCPRoute", metadata=route.metadata)


SERVED = (
    lossy.served(
        group=hub.GROUP,
        version=VERSION,
        kind="HTTPRouteGroup",
        wire=HTTPRouteGroup,
        read=_read_group,
        project=_project_group,
        narrowing=GROUP_NARROWING,
        flat=True,
    ),
    lossy.served(
        group=hub.GROUP,
        version=VERSION,
        kind="TCPRoute",
        wire=TCPRoute,
        read=_read_tcp,
        project=_project_tcp,
        narrowing=ROUTE_NARROWING,
        flat=True,
    ),
)
