"""Unversioned hub of metrics.smi-spec.io: TrafficMetrics and TrafficMetricsList.

There is one version (v1alpha1) and the objects are read-only (an aggregated API serves them;
nothing is admitted or compiled), so the hub mirrors that version field for field, frozen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from smi.apis.meta import ObjectMeta

GROUP = "metrics.smi-spec.io"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObjectReference(_Frozen):
    """A Kubernetes ObjectReference; `{}` (every field None) means all peers on an edge."""

    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    api_version: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    field_path: str | None = None


class Edge(_Frozen):
    direction: Literal["to", "from"]
    side: Literal["client", "server"]
    resource: ObjectReference = Field(default_factory=ObjectReference)


class Metric(_Frozen):
    name: str
    unit: str | None = None
    value: int | float | str  # a quantity, as written


class Backend(_Frozen):
    """The backend a TrafficSplit metric is about."""

    apex: str
    name: str
    weight: int


class TrafficMetrics(_Frozen):
    kind: Literal["TrafficMetrics"] = "TrafficMetrics"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    resource: ObjectReference
    edge: Edge
    timestamp: datetime
    window: str
    metrics: tuple[Metric, ...] = ()
    backend: Backend | None = None


class LabelSelector(_Frozen):
    match_labels: tuple[tuple[str, str], ...] | None = None
    match_expressions: tuple[tuple[str, str, tuple[str, ...] | None], ...] | None = None


class TrafficMetricsList(_Frozen):
    """`items` None = the field was absent (or null), kept apart from ()."""

    kind: Literal["TrafficMetricsList"] = "TrafficMetricsList"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    resource: ObjectReference
    selector: LabelSelector | None = None
    items: tuple[TrafficMetrics, ...] | None = None


MetricsHub = TrafficMetrics | TrafficMetricsList
