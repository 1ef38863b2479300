"""access.smi-spec.io/v1alpha1: TrafficTarget in the flat layout.

`destination`, `specs` (later renamed `rules`) and `sources` sit at the object root. The
destination's `port` is optional, as the spec says (the sdk `main` CRD wrongly requires it),
and may be a port number in quotes, as early SDKs wrote it (`QuotedPortDestination`).
Rule kinds: HTTPRouteGroup, TCPRoute; UDPRoute rules and IdentityBinding sources of newer
versions ride in the lossy-fields annotation (`smi.apis.access.common` says why that is safe).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from smi.apis import lossy
from smi.apis.access import hub
from smi.apis.access.common import (
    TARGET_NARROWING,
    QuotedPortDestination,
    Rule,
    Subject,
    build_target,
    plain_subject,
    port_destination,
    require_expressible,
    rules_to_hub,
    shown_rules,
    shown_sources,
    subject_to_hub,
)
from smi.apis.meta import ObjectMeta
from smi.apis.wire import WireObject

VERSION = "v1alpha1"
API_VERSION: Final = "access.smi-spec.io/v1alpha1"


class TrafficTarget(WireObject):
    hub_type = hub.TrafficTarget

    api_version: Literal["access.smi-spec.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["TrafficTarget"]
    destination: QuotedPortDestination
    specs: list[Rule] | None = None
    sources: list[Subject] | None = None


def _read(wire: TrafficTarget, meta: ObjectMeta) -> hub.TrafficTarget:
    return build_target(
        kind="TrafficTarget",
        metadata=meta,
        destination=subject_to_hub(wire.destination),
        rules=rules_to_hub(wire.specs),
        sources=tuple(subject_to_hub(s) for s in wire.sources or ()),
    )


def _project(target: hub.TrafficTarget) -> TrafficTarget:
    require_expressible(target, version=VERSION, bindings=False)
    return TrafficTarget(
        apiVersion=API_VERSION,
        kind="TrafficTarget",
        metadata=target.metadata,
        destination=port_destination(target.destination, QuotedPortDestination),
        specs=shown_rules(target, udp=False) or None,
        sources=[plain_subject(s) for s in shown_sources(target, bindings=False)] or None,
    )


SERVED = (
    lossy.served(
        group=hub.GROUP,
        version=VERSION,
        kind="TrafficTarget",
        wire=TrafficTarget,
        read=_read,
        project=_project,
        narrowing=TARGET_NARROWING,
        flat=True,
    ),
)
