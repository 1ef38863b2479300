"""split.smi-spec.io/v1alpha3: TrafficSplit with whole-number weights and optional `matches`
(HTTPRouteGroups whose requests are split; the rest go to the root service).

Milli weights that are not whole units are written as ratio-preserving integers with the
exact values in the lossy-fields annotation.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from smi.apis import lossy
from smi.apis.meta import ObjectMeta
from smi.apis.split import hub
from smi.apis.split.common import (
    Backend,
    MatchRef,
    backends_to_hub,
    build_split,
    int_backends,
    match_refs,
    matches_to_hub,
)
from smi.apis.wire import WireModel, WireObject

VERSION = "v1alpha3"
API_VERSION: Final = "split.smi-spec.io/v1alpha3"


class TrafficSplitSpec(WireModel):
    service: str
    matches: list[MatchRef] | None = None
    backends: list[Backend]


class TrafficSplit(WireObject):
    hub_type = hub.TrafficSplit

    api_version: Literal["split.smi-spec.io/v1alpha3"] = Field(alias="apiVersion")
    kind: Literal["TrafficSplit"]
    spec: TrafficSplitSpec


def spec_to_hub(spec: TrafficSplitSpec, meta: ObjectMeta) -> hub.TrafficSplit:
    """Shared with v1alpha4, whose schema is this one's."""
    return build_split(
        kind="TrafficSplit",
        metadata=meta,
        service=spec.service,
        backends=backends_to_hub(spec.backends),
        matches=matches_to_hub(spec.matches),
    )


def spec_from_hub(split: hub.TrafficSplit) -> TrafficSplitSpec:
    return TrafficSplitSpec(
        service=split.service,
        matches=match_refs(split.matches),
        backends=int_backends(split.backends),
    )


def _read(wire: TrafficSplit, meta: ObjectMeta) -> hub.TrafficSplit:
    return spec_to_hub(wire.spec, meta)


def _project(split: hub.TrafficSplit) -> TrafficSplit:
    return TrafficSplit(
        apiVersion=API_VERSION,
        kind="TrafficSplit",
        metadata=split.metadata,
        spec=spec_from_hub(split),
    )


SERVED = (
    lossy.served(
        group=hub.GROUP,
        version=VERSION,
        kind="TrafficSplit",
        wire=TrafficSplit,
        read=_read,
        project=_project,
        flat=False,
    ),
)
