"""access.smi-spec.io/v1alpha3 (latest released): TrafficTarget under `spec`.

`destination`, `rules` and `sources` are all required (presence only: emptiness is a
validation error, SMI2402/SMI2403). `destination.port` is gone: a destination port from an
older version rides in the lossy-fields annotation, and stays while the destination names the
same ServiceAccount, however it is edited (`smi.apis.access.common`). Rule kinds gain
UDPRoute. IdentityBinding sources (v1alpha4 draft) ride in the annotation too; an
IdentityBinding destination is refused.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from smi.apis import lossy
from smi.apis.access import hub
from smi.apis.access.common import (
    TARGET_NARROWING,
    Rule,
    Subject,
    build_target,
    plain_subject,
    require_expressible,
    rules_to_hub,
    shown_rules,
    shown_sources,
    subject_to_hub,
)
from smi.apis.meta import ObjectMeta
from smi.apis.wire import WireModel, WireObject

VERSION = "v1alpha3"
API_VERSION: Final = "access.smi-spec.io/v1alpha3"


class TrafficTargetSpec(WireModel):
    destination: Subject
    rules: list[Rule]
    sources: list[Subject]


class TrafficTarget(WireObject):
    hub_type = hub.TrafficTarget

    api_version: Literal["access.smi-spec.io/v1alpha3"] = Field(alias="apiVersion")
    kind: Literal["TrafficTarget"]
    spec: TrafficTargetSpec


def _read(wire: TrafficTarget, meta: ObjectMeta) -> hub.TrafficTarget:
    return build_target(
        kind="TrafficTarget",
        metadata=meta,
        destination=subject_to_hub(wire.spec.destination),
        rules=rules_to_hub(wire.spec.rules),
        sources=tuple(subject_to_hub(s) for s in wire.spec.sources),
    )


def _project(target: hub.TrafficTarget) -> TrafficTarget:
    require_expressible(target, version=VERSION, bindings=False)
    spec = TrafficTargetSpec(
        destination=plain_subject(target.destination),
        rules=shown_rules(target, udp=True),
        sources=[plain_subject(s) for s in shown_sources(target, bindings=False)],
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
