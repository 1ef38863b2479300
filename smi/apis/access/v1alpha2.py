"""access.smi-spec.io/v1alpha2: TrafficTarget under `spec`, `specs` renamed `rules`.

Only `spec.destination` is required; `rules` and `sources` are optional in this version's CRD.
The destination still carries an optional `port`. Rule kinds: HTTPRouteGroup, TCPRoute;
UDPRoute rules (v1alpha3+) and IdentityBinding sources (v1alpha4) ride in the lossy-fields
annotation, so the API server can serve every stored v1alpha3 object in this version
(`smi.apis.access.common` says why leaving them out of this view is safe).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from smi.apis import lossy
from smi.apis.access import hub
from smi.apis.access.common import (
    TARGET_NARROWING,
    PortDestination,
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
from smi.apis.wire import WireModel, WireObject

VERSION = "v1alpha2"
API_VERSION: Final = "access.smi-spec.io/v1alpha2"


class TrafficTargetSpec(WireModel):
    destination: PortDestination
    rules: list[Rule] | None = None
    sources: list[Subject] | None = None


class TrafficTarget(WireObject):
    hub_type = hub.TrafficTarget

    api_version: Literal["access.smi-spec.io/v1alpha2"] = Field(alias="apiVersion")
    kind: Literal["TrafficTarget"]
    spec: TrafficTargetSpec


def _read(wire: TrafficTarget, meta: ObjectMeta) -> hub.TrafficTarget:
    return build_target(
        kind="TrafficTarget",
        metadata=meta,
        destination=subject_to_hub(wire.spec.destination),
        rules=rules_to_hub(wire.spec.rules),
        sources=tuple(subject_to_hub(s) for s in wire.spec.sources or ()),
    )


def _project(target: hub.TrafficTarget) -> TrafficTarget:
    require_expressible(target, version=VERSION, bindings=False)
    spec = TrafficTargetSpec(
        destination=port_destination(target.destination, PortDestination),
        rules=shown_rules(target, udp=False) or None,
        sources=[plain_subject(s) for s in shown_sources(target, bindings=False)] or None,
    )
    return TrafficTarget(
        apiVersion=API_VERSION, kind="TrafficTarget", metadata=target.metadata, spec=spec
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
        flat=False,
    ),
)
