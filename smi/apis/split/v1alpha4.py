"""split.smi-spec.io/v1alpha4 (latest released): schema-identical to v1alpha3 (whole-number
weights, optional `matches`); only the spec text changed
(a validation note, a corrected percentage example).

Milli weights that are not whole units are written as ratio-preserving integers with the
exact values in the lossy-fields annotation.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from smi.apis import lossy
from smi.apis.meta import ObjectMeta
from smi.apis.served import Served
from smi.apis.split import hub
from smi.apis.split.v1alpha3 import TrafficSplitSpec, spec_from_hub, spec_to_hub
from smi.apis.wire import WireObject

VERSION = "v1alpha4"
API_VERSION: Final = "split.smi-spec.io/v1alpha4"


class TrafficSplit(WireObject):
    hub_type = hub.TrafficSplit

    api_version: Literal["split.smi-spec.io/v1alpha4"] = Field(alias="apiVersion")
    kind: Literal["TrafficSplit"]
    spec: TrafficSplitSpec


def _read(wire: TrafficSplit, meta: ObjectMeta) -> hub.TrafficSplit:
    return spec_to_hub(wire.spec, meta)


def _project(split: hub.TrafficSplit) -> TrafficSplit:
    return TrafficSplit(
        apiVersion=API_VERSION,
        kind="TrafficSplit",
        metadata=split.metadata,
        spec=spec_from_hub(split),
    )


def to_hub(wire: TrafficSplit) -> hub.TrafficSplit:
    return lossy.to_hub_via(wire, _read)


def from_hub(split: hub.TrafficSplit) -> TrafficSplit:
    return lossy.from_hub_via(split, _project, _read)


SERVED = (
    Served(
        group=hub.GROUP,
        version=VERSION,
        kind="TrafficSplit",
        wire=TrafficSplit,
        to_hub=to_hub,
        from_hub=from_hub,
        flat=False,
    ),
)
