"""Unversioned hub of split.smi-spec.io: TrafficSplit.

Weights are relative shares held in milli-units, the only unit that holds every version exactly:
v1alpha1 quantities (`"500m"` = 500, `"1"` = 1000) and v1alpha2+ integers (w -> w * 1000).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from smi.apis.meta import ObjectMeta

GROUP = "split.smi-spec.io"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Backend(_Frozen):
    service: str
    weight_milli: int


class MatchRef(_Frozen):
    """A reference to an HTTPRouteGroup in the split's namespace (v1alpha3+)."""

    kind: str
    name: str
    api_group: str | None = None


class TrafficSplit(_Frozen):
    """`matches` None = absent (every request is split); a tuple = only requests matching the
    referenced groups are split, the rest go to the root service."""

    kind: Literal["TrafficSplit"] = "TrafficSplit"
    metadata: ObjectMeta
    service: str
    backends: tuple[Backend, ...] = ()
    matches: tuple[MatchRef, ...] | None = None


SplitHub = TrafficSplit
