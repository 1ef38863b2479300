"""`/convert` serving stored access v1alpha3 TrafficTargets with UDPRoute rules in v1alpha2 and
v1alpha1: the API server converts a whole list in one review, so such an object must convert
(its UDPRoute rules ride in the lossy-fields annotation), not fail every list and watch."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from flask.testing import FlaskClient

from smi.apis.meta import LOSSY_ANNOTATION

V1, V2, V3 = (f"access.smi-spec.io/v1alpha{n}" for n in range(1, 4))


def _stored(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """A TrafficTarget as the API server sends it: with the metadata it keeps."""
    return {
        "apiVersion": V3,
        "kind": "TrafficTarget",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"0b6c1f9e-{name}",
            "resourceVersion": "4711",
            "generation": 2,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"owner": "net"},
            "annotations": {"example.com/ticket": "NET-7"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": V3}],
        },
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": name, "namespace": "shop"},
            "rules": rules,
            "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}],
        },
    }


MIXED = [
    _stored("api", [{"kind": "TCPRoute", "name": "t"}]),
    _stored("dns", [{"kind": "UDPRoute", "name": "dns-udp"}]),
    _stored(
        "both",
        [
            {"kind": "HTTPRouteGroup", "name": "g", "matches": ["m"]},
            {"kind": "UDPRoute", "name": "dns-udp"},
            {"kind": "TCPRoute", "name": "t"},
        ],
    ),
]


def _convert(client: FlaskClient, objects: list[dict[str, Any]], to: str) -> list[dict[str, Any]]:
    review = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": "c-udp", "desiredAPIVersion": to, "objects": objects},
    }
    r = client.post("/convert", json=review)
    assert r.status_code == 200
    response = r.get_json()["response"]
    assert response["uid"] == "c-udp"
    assert response["result"] == {"status": "Success"}, response["result"]
    converted: list[dict[str, Any]] = response["convertedObjects"]
    assert len(converted) == len(objects)
    return converted


def _rule_kinds(obj: dict[str, Any]) -> list[str]:
    rules = obj.get("specs") if obj["apiVersion"] == V1 else obj["spec"].get("rules")
    return [r["kind"] for r in rules or []]


@pytest.mark.parametrize("older", [V2, V1])
def test_a_list_with_udp_rule_targets_converts_down_and_back_exactly(
    client: FlaskClient, older: str
) -> None:
    down = _convert(client, copy.deepcopy(MIXED), older)
    assert [o["apiVersion"] for o in down] == [older] * 3
    assert [_rule_kinds(o) for o in down] == [["TCPRoute"], [], ["HTTPRouteGroup", "TCPRoute"]]
    assert LOSSY_ANNOTATION not in down[0]["metadata"]["annotations"]
    assert all(LOSSY_ANNOTATION in o["metadata"]["annotations"] for o in down[1:])
    back = _convert(client, down, V3)
    assert [o["spec"] for o in back] == [o["spec"] for o in MIXED]
    assert back == MIXED  # metadata too: the annotation leaves, uid and the rest stay


def test_v1alpha1_to_v1alpha2_keeps_the_hidden_rules(client: FlaskClient) -> None:
    """Between two versions that both lack UDPRoute the rules stay in the annotation."""
    v1 = _convert(client, copy.deepcopy(MIXED), V1)
    v2 = _convert(client, v1, V2)
    assert _convert(client, v2, V3) == MIXED
