"""specs.smi-spec.io/v1alpha3: HTTPRouteGroup under `spec.matches`; TCPRoute with an empty
`spec` (`spec: {}` or no `spec`; which one is kept, as the hub's `has_matches`).

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
from smi.apis.wire import WireModel, WireObject

VERSION = "v1alpha3"
API_VERSION: Final = "specs.smi-spec.io/v1alpha3"


class HTTPRouteGroupSpec(WireModel):
    matches: list[HeaderMatch]


class HTTPRouteGroup(WireObject):
    hub_type = hub.HTTPRouteGroup

    api_version: Literal["specs.smi-spec.io/v1alpha3"] = Field(alias="apiVersion")
    kind: Literal["HTTPRouteGroup"]
    spec: HTTPRouteGroupSpec


class TCPRouteSpec(WireModel):
    """Empty in this version."""


class TCPRoute(WireObject):
    hub_type = hub.TCPRoute

    api_version: Literal["specs.smi-spec.io/v1alpha3"] = Field(alias="apiVersion")
    kind: Literal["TCPRoute"]
    spec: TCPRouteSpec | None = None


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


def _read_tcp(wire: TCPRoute, meta: ObjectMeta) -> hub.TCPRoute:
    return hub.TCPRoute(metadata=meta, has_matches=wire.spec is not None)


def _project_tcp(route: hub.TCPRoute) -> TCPRoute:
    return TCPRoute(
        apiVersion=API_VERSION,
        kind="TCPRoute",
        metadata=route.metadata,
        spec=TCPRouteSpec() if route.has_matches else None,
    )


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
)
