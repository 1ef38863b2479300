"""smi.apis.metrics: a TrafficMetrics(List) read into the hub and written again is written as it
came: timestamps as spelled (they came back `.123000Z`, and with a `T` for a space), list items
without metadata still without it (they gained `name: ''`, `namespace: ''`, `labels: {}`,
`annotations: {}`)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from smi.apis import registry
from smi.policy.input import hub_document

V1 = "metrics.smi-spec.io/v1alpha1"


def item(timestamp: Any, **extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "resource": {"kind": "Pod", "name": "a", "namespace": "shop"},
        "edge": {"direction": "to", "side": "client", "resource": {}},
        "timestamp": timestamp,
        "window": "30s",
        "metrics": [{"name": "p99_response_latency", "unit": "ms", "value": "10m"}],
    }


def metrics_list(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": V1,
        "kind": "TrafficMetricsList",
        "resource": {"kind": "Pod", "namespace": "shop"},
        "items": list(items),
    }


@pytest.mark.parametrize(
    "timestamp",
    [
        "2019-04-08T22:25:55.123Z",
        "2019-04-08 22:25:55Z",
        "2019-04-08T22:25:55+00:00",
        "2019-04-08T22:25:55.5+02:00",
        "2019-04-08T22:25:55Z",
    ],
)
def test_timestamps_are_written_as_they_were_read(timestamp: str) -> None:
    single = {"apiVersion": V1, "kind": "TrafficMetrics", **item(timestamp)}
    assert registry.render(registry.parse(single), V1) == single
    listed = metrics_list(item(timestamp))
    assert registry.render(registry.parse(listed), V1) == listed


def test_the_hub_holds_the_time_and_leaves_the_spelling_out_of_the_hub_form() -> None:
    hub_obj = registry.parse(
        {"apiVersion": V1, "kind": "TrafficMetrics", **item("2019-04-08 22:25:55Z")}
    )
    assert hub_obj.timestamp == datetime.datetime(2019, 4, 8, 22, 25, 55, tzinfo=datetime.UTC)
    assert hub_obj.timestamp_written == "2019-04-08 22:25:55Z"
    assert "timestampWritten" not in hub_document(hub_obj)


def test_a_time_given_as_a_datetime_is_written_in_rfc_3339() -> None:
    when = datetime.datetime(2019, 4, 8, 22, 25, 55, 123000, tzinfo=datetime.UTC)
    doc = {"apiVersion": V1, "kind": "TrafficMetrics", **item(when)}
    assert registry.render(registry.parse(doc), V1)["timestamp"] == "2019-04-08T22:25:55.123000Z"


def test_a_spelling_of_another_time_is_not_written() -> None:
    """The hub's time wins over a spelling that does not say it (a hub built from data)."""
    hub_obj = registry.parse(
        {"apiVersion": V1, "kind": "TrafficMetrics", **item("2019-04-08 22:25:55Z")}
    )
    later = hub_obj.model_copy(
        update={"timestamp": datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)}
    )
    assert registry.render(later, V1)["timestamp"] == "2020-01-01T00:00:00Z"


def test_a_time_that_is_no_time_names_the_form_expected() -> None:
    with pytest.raises(ValidationError) as info:
        registry.parse({"apiVersion": V1, "kind": "TrafficMetrics", **item("yesterday")})
    [error] = info.value.errors()
    assert error["type"] == "SMI2003" and error["loc"] == ("timestamp",)
    assert error["msg"] == (
        "must be an RFC 3339 time such as 2019-04-08T22:25:55Z, not 'yesterday'"
    )


def test_list_items_keep_their_metadata_as_written() -> None:
    doc = metrics_list(
        item("2019-04-08T22:25:55Z"),
        item("2019-04-08T22:25:55Z", metadata={"name": "b", "uid": "1"}),
    )
    out = registry.render(registry.parse(doc), V1)
    assert out == doc
    assert "metadata" not in out["items"][0]
