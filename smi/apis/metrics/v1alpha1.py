"""metrics.smi-spec.io/v1alpha1: TrafficMetrics and TrafficMetricsList (read-only types).

Served by a mesh's aggregated API, never admitted; smictl reads them (e.g. from `kubectl get
--raw`) and writes them back unchanged. Metric values are quantities of any precision,
`timestamp` an RFC 3339 time (kept as written), `window` a duration such as `30s`. A list item
without metadata is written without it (its empty metadata left out, as an object's is).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    Field,
    PlainValidator,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
)
from pydantic_core import PydanticCustomError

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
    json_type,
)

VERSION = "v1alpha1"
API_VERSION: Final = "metrics.smi-spec.io/v1alpha1"


_TIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def _timestamp(value: Any) -> str | datetime:
    """A time as pydantic reads one (RFC 3339 text, or a datetime from a Python caller), the
    text kept as written: parsed, `.123Z` was written back `.123000Z`."""
    try:
        parsed = _TIME.validate_python(value)
    except ValidationError:
        shown = repr(value) if isinstance(value, str) else json_type(value)
        raise PydanticCustomError(
            "SMI2003",
            "must be an RFC 3339 time such as 2019-04-08T22:25:55Z, not {shown}",
            {"shown": shown if len(shown) <= 60 else shown[:57] + "..."},
        ) from None
    return value if isinstance(value, str) else parsed


Timestamp = Annotated[str | datetime, PlainValidator(_timestamp)]


def _written_time(text: str | datetime) -> tuple[datetime, str | None]:
    """(the time, the text when it is not how smictl writes that time)."""
    parsed = _TIME.validate_python(text)
    if not isinstance(text, str) or text == _TIME.dump_python(parsed, mode="json"):
        return parsed, None
    return parsed, text


def _time_to_write(obj: hub.TrafficMetrics) -> str | datetime:
    """The timestamp as written, when the hub still says so (a hub built from data may hold a
    text of another time: the time wins)."""
    text = obj.timestamp_written
    if text is not None:
        try:
            parsed = _TIME.validate_python(text)
        except ValidationError:
            return obj.timestamp
        if parsed == obj.timestamp and parsed.utcoffset() == obj.timestamp.utcoffset():
            return text
    return obj.timestamp


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
    timestamp: Timestamp
    window: str
    metrics: list[Metric]
    backend: Backend | None = None


class TrafficMetricsItem(MetricsBody):
    api_version: Literal["metrics.smi-spec.io/v1alpha1"] | None = Field(
        default=None, alias="apiVersion"
    )
    kind: Literal["TrafficMetrics"] | None = None

    @model_serializer(mode="wrap")
    def _metadata_as_written(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        """Metadata without its defaults, and none when it is empty, as `registry.dump`
        writes an object's: an item read without metadata was written with `name: ''`,
        `namespace: ''`, `labels: {}` and `annotations: {}`."""
        data = handler(self)
        if isinstance(data, dict) and "metadata" in data:
            meta = self.metadata.model_dump(mode=info.mode, exclude_defaults=True)
            if meta:
                data["metadata"] = meta
            else:
                del data["metadata"]
        return data


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
    timestamp, written = _written_time(body.timestamp)
    return hub.TrafficMetrics(
        metadata=body.metadata,
        resource=_ref_to_hub(body.resource),
        edge=hub.Edge(
            direction=body.edge.direction,
            side=body.edge.side,
            resource=_ref_to_hub(body.edge.resource),
        ),
        timestamp=timestamp,
        window=body.window,
        metrics=tuple(hub.Metric(name=m.name, unit=m.unit, value=m.value) for m in body.metrics),
        backend=None
        if backend is None
        else hub.Backend(apex=backend.apex, name=backend.name, weight=backend.weight),
    ).written_as(written)


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
        "timestamp": _time_to_write(obj),
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
