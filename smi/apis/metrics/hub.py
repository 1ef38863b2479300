"""Unversioned hub of metrics.smi-spec.io: TrafficMetrics and TrafficMetricsList.

There is one version (v1alpha1) and the objects are read-only (an aggregated API serves them;
nothing is admitted or compiled), so the hub mirrors that version field for field, frozen.
A timestamp is held as a time, and also as written when RFC 3339 spelled it otherwise than
smictl writes that time (`.123Z` for `.123000Z`, a space for the `T`), so that an object read
and written again is written as it came (`TrafficMetrics.timestamp_written`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

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
    """`timestamp_written`: the timestamp as written, None when it is how smictl writes
    `timestamp`. A private attribute, as split's `Backend.weight_written` is: a spelling, not a
    field of the object, so the hub form policies read (which iterates fields) leaves it out."""

    kind: Literal["TrafficMetrics"] = "TrafficMetrics"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    resource: ObjectReference
    edge: Edge
    timestamp: datetime
    window: str
    metrics: tuple[Metric, ...] = ()
    backend: Backend | None = None
    _timestamp_written: str | None = PrivateAttr(default=None)

    @property
    def timestamp_written(self) -> str | None:
        return self._timestamp_written

    def written_as(self, timestamp: str | None) -> TrafficMetrics:
        """This object, its timestamp written `timestamp` (a copy: hub objects are frozen)."""
        if timestamp == self._timestamp_written:
            return self
        copy = self.model_copy()
        copy._timestamp_written = timestamp
        return copy


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
