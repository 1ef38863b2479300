"""split.smi-spec.io/v1alpha2: TrafficSplit with whole-number weights, no `matches`.

Milli weights that are not whole units are written as ratio-preserving integers with the
exact values in the lossy-fields annotation; `matches` ride there too.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from smi.apis import lossy
from smi.apis.meta import ObjectMeta
from smi.apis.split import hub
from smi.apis.split.common import (
    Backend,
    backends_to_hub,
    build_split_without_matches,
    int_backends,
)
from smi.apis.wire import WireModel, WireObject

VERSION = "v1alpha2"
API_VERSION: Final = "split.smi-spec.io/v1alpha2"


class TrafficSplitSpec(WireModel):
    service: str
    backends: list[Backend]


class TrafficSplit(WireObject):
    hub_type = hub.TrafficSplit

    api_version: Literal["split.smi-spec.io/v1alpha2"] = Field(alias="apiVersion")
    kind: Literal["TrafficSplit"]
    spec: TrafficSplitSpec


def _read(wire: TrafficSplit, meta: ObjectMeta) -> hub.TrafficSplit:
    return build_split_without_matches(
        kind="TrafficSplit",
        metadata=meta,
        service=wire.spec.service,
        backends=backends_to_hub(wire.spec.backends),
        matches=None,
    )


def _project(split: hub.TrafficSplit) -> TrafficSplit:
    spec = TrafficSplitSpec(service=split.service, backends=int_backends(split.backends))
    return TrafficSplit(
        apiVersion=API_VERSION, kind="TrafficSplit", metadata=split.metadata, spec=spec
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
