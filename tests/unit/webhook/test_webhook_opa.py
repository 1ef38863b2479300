"""The OPA Data API: policy documents, the admission chain and MeshPolicy decisions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from mesh_reader import reader_client

OWNER = "/v1/data/smi/admission/meta/owner_label"


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A workload's client: the Data API answers callers that prove who they are."""
    return reader_client(app)


def hub_input(labels: dict[str, str]) -> dict[str, Any]:
    return {"hub": {"kind": "TrafficSplit", "metadata": {"name": "s", "labels": labels}}}


def test_a_policy_rule_answers_its_violations(client: FlaskClient) -> None:
    r = client.post(f"{OWNER}/violation", json={"input": hub_input({})})
    assert r.status_code == 200
    [violation] = r.get_json()["result"]
    assert violation["msg"] == "TrafficSplit s has no owner label"
    assert violation["path"] == "metadata.labels"
    clean = client.post(f"{OWNER}/violation", json={"input": hub_input({"owner": "me"})})
    assert clean.get_json() == {"result": []}


def test_a_policy_package_answers_an_object(client: FlaskClient) -> None:
    r = client.post(OWNER, json={"input": hub_input({})})
    assert list(r.get_json()["result"]) == ["violation"]


def test_undefined_documents_answer_an_empty_object_like_opa(client: FlaskClient) -> None:
    r = client.post("/v1/data/nothing/here", json={"input": {}})
    assert r.status_code == 200 and r.get_json() == {}


def test_the_admission_chain_as_a_document(client: FlaskClient) -> None:
    request = {
        "uid": "u",
        "operation": "CREATE",
        "namespace": "shop",
        "name": "s",
        "kind": {"group": "split.smi-spec.io", "version": "v1alpha4", "kind": "TrafficSplit"},
        "userInfo": {"username": "alice"},
        "object": {
            "apiVersion": "split.smi-spec.io/v1alpha4",
            "kind": "TrafficSplit",
            "metadata": {"name": "s", "namespace": "shop"},
            "spec": {"service": "web", "backends": [{"service": "v1", "weight": 0}]},
        },
    }
    result = client.post("/v1/data/smictl/admission", json={"input": request}).get_json()["result"]
    assert result["allowed"] is False and result["code"] == 422
    assert any("SMI2104" in m for m in result["messages"])
    bad = client.post("/v1/data/smictl/admission", json={"input": [1]})
    assert bad.status_code == 400 and bad.get_json()["code"] == "invalid_parameter"


def test_mesh_decisions_follow_the_stored_policy(client: FlaskClient) -> None:
    store = client.application.extensions["smictl"].store
    store.apply(
        [
            {
                "apiVersion": "specs.smi-spec.io/v1alpha4",
                "kind": "TCPRoute",
                "metadata": {"name": "any", "namespace": "shop"},
                "spec": {"matches": {"ports": []}},
            },
            {
                "apiVersion": "access.smi-spec.io/v1alpha3",
                "kind": "TrafficTarget",
                "metadata": {"name": "web-to-api", "namespace": "shop"},
                "spec": {
                    "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
                    "rules": [{"kind": "TCPRoute", "name": "any"}],
                    "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}],
                },
            },
        ]
    )
    ask = {"destination": "shop/api", "port": 8080, "method": "GET", "path": "/"}
    allowed = client.post("/v1/data/smictl/authz", json={"input": {**ask, "source": "shop/web"}})
    assert allowed.get_json()["result"]["allowed"] is True
    assert allowed.get_json()["result"]["rules"] == ["shop/TrafficTarget/web-to-api"]
    denied = client.post("/v1/data/smictl/authz", json={"input": {**ask, "source": "shop/evil"}})
    assert denied.get_json()["result"]["allowed"] is False
    bad = client.post("/v1/data/smictl/authz", json={"input": {**ask, "destination": "x"}})
    assert bad.status_code == 400


def test_the_data_api_answers_only_callers_who_prove_who_they_are(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """`smictl/authz` says who may call whom: enough questions read the authorization graph
    the policy route guards. A caller without a workload or admin token gets OPA's 401."""
    anonymous = app.test_client()
    ask = {"source": "shop/web", "destination": "shop/db", "port": 5432}
    with caplog.at_level("INFO", logger="smictl.decision"):
        r = anonymous.post("/v1/data/smictl/authz", json={"input": ask})
    assert r.status_code == 401
    assert r.get_json() == {
        "code": "unauthorized",
        "message": "missing `Authorization: Bearer <token>` (bootstrap or ServiceAccount token)",
    }
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="smictl"'
    events = [getattr(rec, "fields", {}).get("event") for rec in caplog.records]
    assert events.count("data_api_unauthenticated") == 1
    forged = anonymous.post(
        "/v1/data/smictl/authz", json={"input": ask}, headers={"Authorization": "Bearer x.y.z"}
    )
    assert forged.status_code == 401 and forged.get_json()["code"] == "unauthorized"
    assert reader_client(app).post("/v1/data/smictl/authz", json={"input": ask}).status_code == 200


def test_the_admin_token_asks_the_data_api_too(
    settings: Any, tmp_path: Any, policy_set: Any
) -> None:
    from local_admin import admin_client, with_admin_token

    from webhook import create_app

    app = create_app(with_admin_token(settings, tmp_path), policies=policy_set)
    try:
        r = admin_client(app).post(f"{OWNER}/violation", json={"input": hub_input({})})
        assert r.status_code == 200 and len(r.get_json()["result"]) == 1
    finally:
        app.extensions["smictl"].store.close()


def _split(namespace: str = "shop", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {"name": "s", "namespace": namespace, **meta},
        "spec": {"service": "web", "backends": [{"service": "v1", "weight": 0}]},
    }


CASES = [
    "an excluded namespace",
    "the control plane's own account",
    "a metadata-only update",
    "a finalizer removed while terminating",
    "an invalid object",
]


def _reviews(review: Callable[..., dict[str, Any]]) -> dict[str, dict[str, Any]]:
    dying = _split(deletionTimestamp="2026-01-01T00:00:00Z", finalizers=["x"])
    return {
        "an excluded namespace": review(_split("kube-system")),
        "the control plane's own account": review(
            _split(), username="system:serviceaccount:smictl-system:smictl"
        ),
        "a metadata-only update": review(
            _split(labels={"team": "a"}), operation="UPDATE", old=_split()
        ),
        "a finalizer removed while terminating": review(
            {**dying, "metadata": {**dying["metadata"], "finalizers": []}},
            operation="UPDATE",
            old=dying,
        ),
        "an invalid object": review(_split()),
    }


@pytest.mark.parametrize("case", CASES)
def test_the_admission_document_answers_what_validate_answers(
    app: Flask, client: FlaskClient, make_review: Callable[..., dict[str, Any]], case: str
) -> None:
    """The Data API ran the chain alone, and refused (SMI2104) the four reviews `/validate`
    admits without judging them; docs/control-plane.md promises the same question and answer."""
    reviews = _reviews(make_review)
    assert list(reviews) == CASES
    review = reviews[case]
    webhook = app.test_client().post("/validate", json=review).get_json()["response"]
    data = client.post("/v1/data/smictl/admission", json={"input": review}).get_json()["result"]
    assert data["allowed"] is webhook["allowed"] is (case != "an invalid object")
    assert data["code"] == webhook.get("status", {}).get("code", 200)
    assert "\n".join(data["messages"]) == webhook.get("status", {}).get("message", "")
    assert data["warnings"] == webhook.get("warnings", [])
