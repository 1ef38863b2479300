"""split.smi-spec.io/v1alpha1: TrafficSplit with Kubernetes-quantity weights.

`"500m"` = 500 milli-units, `1` or `"1"` = 1000; a weight finer than 1m is an SMI2103 error
(the hub holds milli-units). `matches` (v1alpha3+) ride in the lossy-fields annotation.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from smi.apis import lossy
from smi.apis.meta import ObjectMeta
from smi.apis.split import hub
from smi.apis.split.common import (
    QuantityBackend,
    build_split_without_matches,
    quantity_backends,
    quantity_backends_to_hub,
)
from smi.apis.wire import WireModel, WireObject

VERSION = "v1alpha1"
API_VERSION: Final = "split.smi-spec.io/v1alpha1"


class TrafficSplitSpec(WireModel):
    service: str
    backends: list[QuantityBackend]


class TrafficSplit(WireObject):
    hub_type = hub.TrafficSplit

    api_version: Literal["split.smi-spec.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["TrafficSplit"]
    spec: TrafficSplitSpec


def _read(wire: TrafficSplit, meta: ObjectMeta) -> hub.TrafficSplit:
    return build_split_without_matches(
        kind="TrafficSplit",
        metadata=meta,
        service=wire.spec.service,
        backends=quantity_backends_to_hub(wire.spec.backends),
        matches=None,
    )


def _project(split: hub.TrafficSplit) -> TrafficSplit:
    spec = TrafficSplitSpec(service=split.service, backends=quantity_backends(split.backends))
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
