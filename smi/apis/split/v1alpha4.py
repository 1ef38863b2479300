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
