"""`/convert` under ConversionReviews the way kube-apiserver sends them (stored objects with
full metadata, several objects of mixed versions) and hostile ones: the answer keeps order,
count and metadata, and any failure is `result.status: Failure` with a reason naming the object
and the field, never a partial list and never a 500."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from smi.apis.registry import supported_versions

LOSSY = "smictl.io/lossy-fields"
META: dict[str, Any] = {
    "name": "web",
    "namespace": "shop",
    "uid": "6f1c2a4e-0a3b-4c1d-9e8f-1a2b3c4d5e6f",
    "resourceVersion": "4711",
    "generation": 3,
    "creationTimestamp": "2024-01-01T00:00:00Z",
    "labels": {"app": "web", "team": "ünïcode"},
    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "a~b/c": "x"},
    "finalizers": ["example.com/keep"],
    "managedFields": [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "split.smi-spec.io/v1alpha4",
            "time": "2024-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:service": {}}},
        }
    ],
}


def split(version: str, name: str, weights: tuple[Any, Any]) -> dict[str, Any]:
    meta = copy.deepcopy(META)
    meta["name"] = name
    return {
        "apiVersion": f"split.smi-spec.io/{version}",
        "kind": "TrafficSplit",
        "metadata": meta,
        "spec": {
            "service": "web",
            "backends": [
                {"service": "web-v1", "weight": weights[0]},
                {"service": "web-v2", "weight": weights[1]},
            ],
        },
    }


MIXED = [
    split("v1alpha1", "a", ("500m", "1")),
    split("v1alpha4", "b", (90, 10)),
    split("v1alpha2", "c", (1, 3)),
    split("v1alpha3", "d", (0, 7)),
]


def review(objects: list[dict[str, Any]], to: str, uid: str = "c-1") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": to, "objects": objects},
    }


def answer(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/convert", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    doc = r.get_json()
    assert doc["apiVersion"] == "apiextensions.k8s.io/v1" and doc["kind"] == "ConversionReview"
    response: dict[str, Any] = doc["response"]
    assert response["uid"] == body["request"]["uid"]
    return response


def failure(client: FlaskClient, objects: list[dict[str, Any]], to: str) -> str:
    response = answer(client, review(objects, to))
    assert response["result"]["status"] == "Failure", response
    assert response["convertedObjects"] == []  # never a partial list
    message: str = response["result"]["message"]
    assert message and "\n" not in message
    return message


# --- bugs --------------------------------------------------------------------------------------


def test_deeply_nested_managed_fields_are_a_failure_not_a_500(client: FlaskClient) -> None:
    # fieldsV1 mirrors the object's structure; past ~255 levels pydantic's serialiser raised
    # ValueError ("Maximum serialization depth exceeded") and the review was answered 500.
    deep: dict[str, Any] = {}
    cur = deep
    for _ in range(300):
        cur["f:a"] = {}
        cur = cur["f:a"]
    obj = split("v1alpha4", "deep", (1, 1))
    obj["metadata"]["managedFields"][0]["fieldsV1"] = deep
    message = failure(client, [MIXED[0], obj], "split.smi-spec.io/v1alpha2")
    assert message.startswith("objects[1] TrafficSplit shop/deep: cannot convert to ")
    assert "internal error (ValueError)" in message


def test_the_failure_names_the_field_and_the_code(client: FlaskClient) -> None:
    bad = split("v1alpha4", "bad", (1, 1))
    bad["spec"]["service"] = 5
    del bad["spec"]["backends"]
    message = failure(client, [MIXED[1], bad], "split.smi-spec.io/v1alpha1")
    assert message.startswith("objects[1] TrafficSplit shop/bad: cannot convert to ")
    assert "spec.service: must be a string, not an integer (SMI2003)" in message
    assert "spec.backends: required field missing (SMI2002)" in message


def test_a_corrupt_lossy_annotation_is_named_as_such(client: FlaskClient) -> None:
    obj = split("v1alpha1", "lossy", ("1", "1"))
    obj["metadata"]["annotations"][LOSSY] = "{not json"
    message = failure(client, [obj], "split.smi-spec.io/v1alpha4")
    assert "annotation smictl.io/lossy-fields: not JSON" in message and "(SMI4004)" in message


def test_a_stored_port_of_another_json_type_is_a_failure_not_another_port(
    client: FlaskClient,
) -> None:
    # A v1alpha3 TrafficTarget keeps its v1alpha1 destination port in the annotation; stored
    # as `true` (hand-edited), it was read as port 1 and the review answered Success.
    obj = {
        "apiVersion": "access.smi-spec.io/v1alpha3",
        "kind": "TrafficTarget",
        "metadata": {**copy.deepcopy(META), "name": "port"},
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
            "rules": [{"kind": "TCPRoute", "name": "db"}],
            "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}],
        },
    }
    obj["metadata"]["annotations"][LOSSY] = json.dumps(
        {
            "destination": {
                "value": {
                    "kind": "ServiceAccount",
                    "name": "api",
                    "namespace": "shop",
                    "group": "",
                    "port": True,
                },
                "was": "x",
            }
        }
    )
    message = failure(client, [obj], "access.smi-spec.io/v1alpha1")
    assert message.startswith("objects[0] TrafficTarget shop/port: cannot convert to ")
    assert "'destination'.port: Input should be a valid integer, not a boolean" in message
    assert message.endswith("(SMI4004)")


# --- probed and fine (kept as regression tests) ---------------------------------------------------


@pytest.mark.parametrize("version", supported_versions()["split.smi-spec.io"]["TrafficSplit"])
def test_mixed_versions_keep_order_count_and_metadata(client: FlaskClient, version: str) -> None:
    to = f"split.smi-spec.io/{version}"
    response = answer(client, review(MIXED, to))
    assert response["result"] == {"status": "Success"}
    converted = response["convertedObjects"]
    assert [o["metadata"]["name"] for o in converted] == ["a", "b", "c", "d"]
    for original, out in zip(MIXED, converted, strict=True):
        assert out["apiVersion"] == to and out["kind"] == "TrafficSplit"
        meta = dict(out["metadata"])
        annotations = dict(meta.pop("annotations"))
        annotations.pop(LOSSY, None)  # the only key the conversion owns
        assert annotations == original["metadata"]["annotations"]
        assert meta == {k: v for k, v in original["metadata"].items() if k != "annotations"}


def test_a_round_trip_through_every_version_gives_the_stored_objects_back(
    client: FlaskClient,
) -> None:
    versions = supported_versions()["split.smi-spec.io"]["TrafficSplit"]
    current = [MIXED[0]]
    for version in [*versions, *reversed(versions)]:
        current = answer(client, review(current, f"split.smi-spec.io/{version}"))[
            "convertedObjects"
        ]
    assert current == [MIXED[0]]


def test_an_empty_objects_list_is_a_success_with_an_empty_list(client: FlaskClient) -> None:
    response = answer(client, review([], "split.smi-spec.io/v1alpha3"))
    assert response == {"uid": "c-1", "result": {"status": "Success"}, "convertedObjects": []}


@pytest.mark.parametrize(
    ("obj", "to", "reason"),
    [
        (
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}},
            "split.smi-spec.io/v1alpha2",
            "Deployment apps/v1 is not an SMI object",
        ),
        (MIXED[1], "specs.smi-spec.io/v1alpha4", "belongs to split.smi-spec.io"),
        (MIXED[1], "split.smi-spec.io/v9", "is not an SMI version smictl serves"),
        (
            {**MIXED[1], "kind": "TrafficSplitz"},
            "split.smi-spec.io/v1alpha2",
            "has no kind TrafficSplitz",
        ),
    ],
    ids=["not-smi", "other-group", "unknown-version", "unknown-kind"],
)
def test_objects_the_webhook_does_not_serve_fail_the_whole_review(
    client: FlaskClient, obj: dict[str, Any], to: str, reason: str
) -> None:
    message = failure(client, [MIXED[0], obj, MIXED[2]], to)
    assert reason in message


def test_control_characters_in_a_name_keep_the_message_on_one_line(client: FlaskClient) -> None:
    obj = split("v1alpha4", "evil\nname", (1, 1))
    obj["spec"]["service"] = 1
    message = failure(client, [obj], "split.smi-spec.io/v1alpha1")
    assert "shop/evil\\nname" in message


@pytest.mark.parametrize(
    "request_doc",
    [
        {"desiredAPIVersion": "split.smi-spec.io/v1alpha1", "objects": []},
        {"uid": "", "desiredAPIVersion": "split.smi-spec.io/v1alpha1", "objects": []},
        {"uid": "u", "desiredAPIVersion": "split.smi-spec.io/v1alpha1", "objects": None},
        {"uid": "u", "objects": []},
        {"uid": "u", "desiredAPIVersion": "split.smi-spec.io/v1alpha1", "objects": ["x"]},
    ],
    ids=["no-uid", "empty-uid", "null-objects", "no-desired", "non-object-item"],
)
def test_a_review_that_cannot_be_answered_is_a_400(
    client: FlaskClient, request_doc: dict[str, Any]
) -> None:
    body = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview"}
    r = client.post("/convert", data=json.dumps({**body, "request": request_doc}))
    assert r.status_code == 400
    assert r.get_json()["code"] == "SMI7010"


@pytest.mark.parametrize(
    ("meta", "named", "field"),
    [
        ({"name": None}, "TrafficSplit shop/null", "metadata.name: must be a string, not null"),
        (
            {"name": "web", "namespace": True},
            "TrafficSplit true/web",
            "metadata.namespace: must be a string, not a boolean",
        ),
        ({"name": 2.5}, "TrafficSplit shop/2.5", "metadata.name: must be a string, not a number"),
    ],
)
def test_a_failure_names_a_non_string_name_as_json_spells_it(
    client: FlaskClient, meta: dict[str, Any], named: str, field: str
) -> None:
    # The object was named in Python's spelling (`TrafficSplit shop/None`, `True/web`), which
    # reads as an object called "None" in the API server's error, not as the JSON it was sent.
    obj = split("v1alpha4", "x", (1, 1))
    obj["metadata"] = {"namespace": "shop", **meta}
    message = failure(client, [obj], "split.smi-spec.io/v1alpha1")
    assert message.startswith(f"objects[0] {named}: cannot convert to ")
    assert f"{field} (SMI2003)" in message
