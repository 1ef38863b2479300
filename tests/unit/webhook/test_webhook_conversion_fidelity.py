"""`/convert` gives objects back exactly: to their own version unchanged (a split v1alpha1
`weight: 1` came back `"1"`, `"1.5"` came back `"1500m"`), through an integer version and back
with every v1alpha1 weight spelled as it was, and stored objects whose metadata maps are null
(as Helm leaves them) convert instead of failing the review with SMI2003."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from flask.testing import FlaskClient

V1 = "split.smi-spec.io/v1alpha1"
STORED: dict[str, Any] = {
    "apiVersion": V1,
    "kind": "TrafficSplit",
    "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "7"},
    "spec": {
        "service": "web",
        "backends": [
            {"service": "web-v1", "weight": 1},
            {"service": "web-v2", "weight": 0},
            {"service": "web-v3", "weight": "1.5"},
            {"service": "web-v4", "weight": "250m"},
        ],
    },
}


def convert(client: FlaskClient, objects: list[dict[str, Any]], to: str) -> list[dict[str, Any]]:
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": "c-1", "desiredAPIVersion": to, "objects": objects},
    }
    r = client.post("/convert", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    response = r.get_json()["response"]
    assert response["result"] == {"status": "Success"}, response["result"]
    converted: list[dict[str, Any]] = response["convertedObjects"]
    return converted


def test_an_object_already_in_the_desired_version_comes_back_unchanged(
    client: FlaskClient,
) -> None:
    """Not rewritten through the hub, which drops what it does not keep apart (empty and null
    maps) and respelled what it reads (weights)."""
    as_helm_left_it = copy.deepcopy(STORED)
    as_helm_left_it["metadata"].update(labels=None, annotations={})
    assert convert(client, [STORED, as_helm_left_it], V1) == [STORED, as_helm_left_it]


@pytest.mark.parametrize("through", ["v1alpha2", "v1alpha3", "v1alpha4"])
def test_v1alpha1_weights_come_back_as_written(client: FlaskClient, through: str) -> None:
    converted = convert(client, [STORED], f"split.smi-spec.io/{through}")
    assert [b["weight"] for b in converted[0]["spec"]["backends"]] == [4, 0, 6, 1]
    assert convert(client, converted, V1) == [STORED]


def test_null_metadata_maps_convert(client: FlaskClient) -> None:
    stored = copy.deepcopy(STORED)
    stored["metadata"].update(labels=None, annotations=None)
    [converted] = convert(client, [stored], "split.smi-spec.io/v1alpha4")
    assert "labels" not in converted["metadata"] and converted["metadata"]["uid"] == "u-1"
    assert convert(client, [converted], V1) == [STORED]
