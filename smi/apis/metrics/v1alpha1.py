"""metrics.smi-spec.io/v1alpha1: TrafficMetrics and TrafficMetricsList (read-only types).

Served by a mesh's aggregated API, never admitted; smictl reads them (e.g. from `kubectl get
--raw`) and writes them back unchanged. Metric values are quantities of any precision,
`timestamp` an RFC 3339 time, `window` a duration such as `30s`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import Field

from smi.apis.meta import ObjectMeta
from smi.apis.metrics import hub
from smi.apis.served import Served
from smi.apis.wire import (
    AnyQuantity,
    LabelSelector,
    LabelSelectorRequirement,
    StrictInt,
    WireModel,
    WireObject,
)

VERSION = "v1alpha1"
API_VERSION: Final = "metrics.smi-spec.io/v1alpha1"


class ObjectReference(WireModel):
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    api_version: str | None = Field(default=None, alias="apiVersion")
    uid: str | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    field_path: str | None = Field(default=None, alias="fieldPath")


class Edge(WireModel):
    direction: Literal["to", "from"]
    side: Literal["client", "server"]
    resource: ObjectReference


class Metric(WireModel):
    name: str
    unit: str | None = None
    value: AnyQuantity


class Backend(WireModel):
    apex: str
    name: str
    weight: StrictInt


class MetricsBody(WireModel):
    """The fields of one TrafficMetrics, as list items carry them (apiVersion/kind optional)."""

    metadata: ObjectMeta = Field(default_factory=ObjectMeta, strict=False)
    resource: ObjectReference
    edge: Edge
    timestamp: datetime = Field(strict=False)
    window: str
    metrics: list[Metric]
    backend: Backend | None = None


class TrafficMetricsItem(MetricsBody):
    api_version: Literal["metrics.smi-spec.io/v1alpha1"] | None = Field(
        default=None, alias="apiVersion"
    )
    kind: Literal["TrafficMetrics"] | None = None


class TrafficMetrics(WireObject, MetricsBody):
    hub_type = hub.TrafficMetrics

    api_version: Literal["metrics.smi-spec.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["TrafficMetrics"]


class TrafficMetricsList(WireObject):
    hub_type = hub.TrafficMetricsList

    api_version: Literal["metrics.smi-spec.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["TrafficMetricsList"]
    resource: ObjectReference
    selector: LabelSelector | None = None
    items: list[TrafficMetricsItem] | None = None


# --- to the hub -------------------------------------------------------------------------------


def _ref_to_hub(ref: ObjectReference) -> hub.ObjectReference:
    return hub.ObjectReference.model_validate(ref.model_dump())


def _body_to_hub(body: MetricsBody) -> hub.TrafficMetrics:
    backend = body.backend
    return hub.TrafficMetrics(
        metadata=body.metadata,
        resource=_ref_to_hub(body.resource),
        edge=hub.Edge(
            direction=body.edge.direction,
            side=body.edge.side,
            resource=_ref_to_hub(body.edge.resource),
        ),
        timestamp=body.timestamp,
        window=body.window,
        metrics=tuple(hub.Metric(name=m.name, unit=m.unit, value=m.value) for m in body.metrics),
        backend=None
        if backend is None
        else hub.Backend(apex=backend.apex, name=backend.name, weight=backend.weight),
    )


def _selector_to_hub(selector: LabelSelector) -> hub.LabelSelector:
    labels = selector.match_labels
    exprs = selector.match_expressions
    return hub.LabelSelector(
        match_labels=None if labels is None else tuple(labels.items()),
        match_expressions=None
        if exprs is None
        else tuple(
            (e.key, e.operator, None if e.values is None else tuple(e.values)) for e in exprs
        ),
    )


def metrics_to_hub(wire: TrafficMetrics) -> hub.TrafficMetrics:
    return _body_to_hub(wire)


def list_to_hub(wire: TrafficMetricsList) -> hub.TrafficMetricsList:
    return hub.TrafficMetricsList(
        metadata=wire.metadata,
        resource=_ref_to_hub(wire.resource),
        selector=None if wire.selector is None else _selector_to_hub(wire.selector),
        items=None if wire.items is None else tuple(_body_to_hub(i) for i in wire.items),
    )


# --- from the hub -----------------------------------------------------------------------------


def _ref(ref: hub.ObjectReference) -> ObjectReference:
    return ObjectReference.model_validate(ref.model_dump(), by_name=True)


def _body(obj: hub.TrafficMetrics) -> dict[str, object]:
    backend = obj.backend
    return {
        "metadata": obj.metadata,
        "resource": _ref(obj.resource),
        "edge": Edge(
            direction=obj.edge.direction, side=obj.edge.side, resource=_ref(obj.edge.resource)
        ),
        "timestamp": obj.timestamp,
        "window": obj.window,
        "metrics": [Metric(name=m.name, unit=m.unit, value=m.value) for m in obj.metrics],
        "backend": None
        if backend is None
        else Backend(apex=backend.apex, name=backend.name, weight=backend.weight),
    }


def metrics_from_hub(obj: hub.TrafficMetrics) -> TrafficMetrics:
    return TrafficMetrics.model_validate(
        {"apiVersion": API_VERSION, "kind": "TrafficMetrics", **_body(obj)}
    )


def _selector(selector: hub.LabelSelector) -> LabelSelector:
    labels = selector.match_labels
    exprs = selector.match_expressions
    return LabelSelector(
        matchLabels=None if labels is None else dict(labels),
        matchExpressions=None
        if exprs is None
        else [
            LabelSelectorRequirement(
                key=key, operator=op, values=None if values is None else list(values)
            )
            for key, op, values in exprs
        ],
    )


def list_from_hub(obj: hub.TrafficMetricsList) -> TrafficMetricsList:
    items = (
        None
        if obj.items is None
        else [TrafficMetricsItem.model_validate(_body(i)) for i in obj.items]
    )
    return TrafficMetricsList(
        apiVersion=API_VERSION,
        kind="TrafficMetricsList",
        metadata=obj.metadata,
        resource=_ref(obj.resource),
        selector=None if obj.selector is None else _selector(obj.selector),
        items=items,
    )


def to_hub(wire: TrafficMetrics | TrafficMetricsList) -> hub.MetricsHub:
    return metrics_to_hub(wire) if isinstance(wire, TrafficMetrics) else list_to_hub(wire)


def from_hub(obj: hub.MetricsHub) -> TrafficMetrics | TrafficMetricsList:
    if isinstance(obj, hub.TrafficMetrics):
        return metrics_from_hub(obj)
    return list_from_hub(obj)


SERVED = (
    Served(
        group=hub.GROUP,
        version=VERSION,
        kind="TrafficMetrics",
        wire=TrafficMetrics,
        to_hub=metrics_to_hub,
        from_hub=metrics_from_hub,
        flat=True,
    ),
    Served(
        group=hub.GROUP,
        version=VERSION,
        kind="TrafficMetricsList",
        wire=TrafficMetricsList,
        to_hub=list_to_hub,
        from_hub=list_from_hub,
        flat=True,
    ),
)
