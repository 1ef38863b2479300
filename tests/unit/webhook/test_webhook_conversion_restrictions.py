"""`/convert` and `/validate` with restrictions a served version cannot show.

The API server serves a stored v1alpha4 HTTPRouteGroup in specs v1alpha1 (no headers); a
v1alpha1 client appends HEAD to the `health` match and writes the object back; the API server
converts it to the storage version. That edit used to drop the `admin` match's token header:
the stored object then allowed GET /admin without it. The same for a v1alpha1 destination port
behind an access v1alpha3 edit. Admission names what the annotation restores out of sight."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from smi.apis.meta import LOSSY_ANNOTATION

SPECS_V1, SPECS_V4 = "specs.smi-spec.io/v1alpha1", "specs.smi-spec.io/v1alpha4"
ACCESS_V1, ACCESS_V3 = "access.smi-spec.io/v1alpha1", "access.smi-spec.io/v1alpha3"
TOKEN = [{"x-admin-token": "^s3cret$"}]
META = {"name": "api-routes", "namespace": "shop", "uid": "6f0c", "resourceVersion": "42"}
STORED_GROUP = {
    "apiVersion": SPECS_V4,
    "kind": "HTTPRouteGroup",
    "metadata": META,
    "spec": {
        "matches": [
            {"name": "admin", "pathRegex": "/admin/.*", "methods": ["GET"], "headers": TOKEN},
            {"name": "health", "pathRegex": "/healthz$", "methods": ["GET"]},
        ]
    },
}
STORED_TARGET = {
    "apiVersion": ACCESS_V1,
    "kind": "TrafficTarget",
    "metadata": {**META, "name": "metrics"},
    "destination": {"kind": "ServiceAccount", "name": "api", "port": 9102},
    "specs": [{"kind": "TCPRoute", "name": "tcp"}],
    "sources": [{"kind": "ServiceAccount", "name": "prom", "namespace": "shop"}],
}
Review = Callable[..., dict[str, Any]]


def _convert(client: FlaskClient, obj: dict[str, Any], to: str) -> dict[str, Any]:
    review = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": "c-1", "desiredAPIVersion": to, "objects": [obj]},
    }
    r = client.post("/convert", json=review)
    assert r.status_code == 200
    response = r.get_json()["response"]
    assert response["result"] == {"status": "Success"}, response["result"]
    [converted] = response["convertedObjects"]
    assert isinstance(converted, dict)
    return converted


def test_an_edit_through_v1alpha1_keeps_the_admin_token_in_storage(client: FlaskClient) -> None:
    served = _convert(client, STORED_GROUP, SPECS_V1)
    assert "headers" not in served["matches"][0]
    served["matches"][1]["methods"].append("HEAD")
    stored = _convert(client, served, SPECS_V4)
    assert stored["spec"]["matches"] == [
        {"name": "admin", "pathRegex": "/admin/.*", "methods": ["GET"], "headers": TOKEN},
        {"name": "health", "pathRegex": "/healthz$", "methods": ["GET", "HEAD"]},
    ]
    assert LOSSY_ANNOTATION not in stored["metadata"].get("annotations", {})


def test_an_edit_of_the_destination_through_v1alpha3_keeps_its_port(
    client: FlaskClient,
) -> None:
    served = _convert(client, STORED_TARGET, ACCESS_V3)
    served["spec"]["destination"]["namespace"] = "shop"
    stored = _convert(client, served, ACCESS_V1)
    assert stored["destination"]["port"] == 9102


def test_admission_names_the_port_a_kept_annotation_still_enforces(
    client: FlaskClient, make_review: Review
) -> None:
    """`kubectl apply` of the user's own v1alpha3 manifest (no port) keeps the annotation of
    an earlier conversion: admitted, with a warning that says what it enforces."""
    annotation = _convert(client, STORED_TARGET, ACCESS_V3)["metadata"]["annotations"]
    applied = {
        "apiVersion": ACCESS_V3,
        "kind": "TrafficTarget",
        "metadata": {"name": "metrics", "namespace": "shop", "annotations": annotation},
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
            "rules": [{"kind": "TCPRoute", "name": "tcp"}],
            "sources": [{"kind": "ServiceAccount", "name": "prom", "namespace": "shop"}],
        },
    }
    r = client.post("/validate", json=make_review(applied, operation="UPDATE", old=applied))
    response = r.get_json()["response"]
    assert response["allowed"] is True, response.get("status")
    [warning] = [w for w in response.get("warnings") or [] if "SMI4005" in w]
    assert "destination.port 9102" in warning
    assert "deleting the annotation drops it" in warning
