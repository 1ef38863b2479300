"""`/convert`: ConversionReview between every ordered pair of served versions, and failures."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from flask.testing import FlaskClient

from smi.apis.registry import supported_versions

META = {"name": "obj", "namespace": "shop", "labels": {"owner": "team-a"}}
NEWEST: dict[str, dict[str, Any]] = {
    "TrafficTarget": {
        "apiVersion": "access.smi-spec.io/v1alpha3",
        "kind": "TrafficTarget",
        "metadata": META,
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
            "rules": [{"kind": "HTTPRouteGroup", "name": "routes", "matches": ["metrics"]}],
            "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}],
        },
    },
    "HTTPRouteGroup": {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": META,
        "spec": {"matches": [{"name": "metrics", "pathRegex": "/metrics$", "methods": ["GET"]}]},
    },
    "TCPRoute": {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "TCPRoute",
        "metadata": META,
        "spec": {"matches": {"ports": [8080]}},
    },
    "TrafficSplit": {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": META,
        "spec": {
            "service": "web",
            "backends": [{"service": "web-v1", "weight": 90}, {"service": "web-v2", "weight": 10}],
        },
    },
}


def conversion_review(objects: list[dict[str, Any]], to: str, uid: str = "c-1") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": to, "objects": objects},
    }


def convert(client: FlaskClient, obj: dict[str, Any], to: str) -> dict[str, Any]:
    r = client.post("/convert", json=conversion_review([obj], to))
    assert r.status_code == 200
    response = r.get_json()["response"]
    assert response["uid"] == "c-1"
    assert response["result"]["status"] == "Success", response["result"]
    [converted] = response["convertedObjects"]
    assert converted["apiVersion"] == to
    return dict(converted)


def pairs() -> list[tuple[str, str, str]]:
    out = []
    for group, kinds in supported_versions().items():
        for kind, versions in kinds.items():
            if kind not in NEWEST:
                continue
            for a, b in itertools.permutations(versions, 2):
                out.append((kind, f"{group}/{a}", f"{group}/{b}"))
    return out


@pytest.mark.parametrize(("kind", "source", "target"), pairs())
def test_every_ordered_pair_round_trips(
    client: FlaskClient, kind: str, source: str, target: str
) -> None:
    original = convert(client, NEWEST[kind], source)
    there = convert(client, original, target)
    back = convert(client, there, source)
    assert back == original


def test_several_objects_in_one_review(client: FlaskClient) -> None:
    objects = [NEWEST["TrafficSplit"], NEWEST["TrafficSplit"]]
    r = client.post("/convert", json=conversion_review(objects, "split.smi-spec.io/v1alpha1"))
    converted = r.get_json()["response"]["convertedObjects"]
    assert [o["apiVersion"] for o in converted] == ["split.smi-spec.io/v1alpha1"] * 2
    assert converted[0]["spec"]["backends"][0]["weight"] == "90"  # v1alpha1 quantities


def test_impossible_conversion_is_a_failure_with_the_reason(client: FlaskClient) -> None:
    udp = {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "UDPRoute",
        "metadata": META,
        "spec": {"matches": {"ports": [53]}},
    }
    r = client.post("/convert", json=conversion_review([udp], "specs.smi-spec.io/v1alpha3"))
    assert r.status_code == 200
    response = r.get_json()["response"]
    assert response["result"]["status"] == "Failure"
    assert "objects[0] UDPRoute shop/obj" in response["result"]["message"]
    assert "specs.smi-spec.io/v1alpha3 has no kind UDPRoute" in response["result"]["message"]
    assert response["convertedObjects"] == []


def test_unknown_target_and_wrong_group_fail(client: FlaskClient) -> None:
    for to in ("split.smi-spec.io/v9", "access.smi-spec.io/v1alpha3"):
        r = client.post("/convert", json=conversion_review([NEWEST["TrafficSplit"]], to))
        assert r.get_json()["response"]["result"]["status"] == "Failure"


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'{"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "ConversionReview"}',
        b'{"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "request": {}}',
    ],
)
def test_malformed_reviews_are_400(client: FlaskClient, body: bytes) -> None:
    r = client.post("/convert", data=body, content_type="application/json")
    assert r.status_code == 400
    assert r.get_json()["code"] == "SMI7010" and r.get_json()["error"]
