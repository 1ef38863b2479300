"""`/validate`: AdmissionReview v1 and v1beta1 through the one admission chain, gatekeeper
semantics, bypasses with a reason, and 400s (never 500s) for bodies that are not reviews."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient

from smi.policy.policyset import PolicySet
from webhook import create_app
from webhook.settings import Settings

Review = Callable[..., dict[str, Any]]


def split(
    *,
    weights: tuple[int, int] = (90, 10),
    name: str = "web-canary",
    version: str = "v1alpha4",
    labels: bool = True,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "shop"}
    if labels:
        meta["labels"] = {"owner": "shop-team"}
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


def answer(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/validate", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    doc = r.get_json()
    assert doc["apiVersion"] == body["apiVersion"] and doc["kind"] == "AdmissionReview"
    assert doc["response"]["uid"] == body["request"]["uid"]
    return dict(doc["response"])


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
def test_a_valid_object_is_allowed_with_uid_echoed(
    client: FlaskClient, make_review: Review, api_version: str
) -> None:
    response = answer(client, make_review(split(), api_version=api_version, uid="abc-123"))
    assert response["allowed"] is True
    assert "status" not in response


def test_invalid_object_is_422_with_one_line_per_field(
    client: FlaskClient, make_review: Review
) -> None:
    response = answer(client, make_review(split(weights=(0, 0))))
    assert response["allowed"] is False
    assert response["status"]["code"] == 422 and response["status"]["reason"] == "Invalid"
    assert "SMI2104" in response["status"]["message"]


def test_policy_denial_is_403_with_policy_lines(client: FlaskClient, make_review: Review) -> None:
    # split/canary-step (shipped): a canary weight may move only so far in one update.
    body = make_review(split(weights=(0, 100)), old=split(weights=(100, 0)), operation="UPDATE")
    response = answer(client, body)
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert response["status"]["message"].startswith("[")


def test_warnings_are_passed_through(client: FlaskClient, make_review: Review) -> None:
    response = answer(client, make_review(split(labels=False)))
    assert response["allowed"] is True
    assert any("owner" in w for w in response["warnings"])


@pytest.mark.parametrize("version", ["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"])
def test_every_split_version_is_admitted(
    client: FlaskClient, make_review: Review, version: str
) -> None:
    obj = split(version=version)
    if version == "v1alpha1":
        obj["spec"]["backends"] = [
            {"service": "web-v1", "weight": "900m"},
            {"service": "web-v2", "weight": "100m"},
        ]
    assert answer(client, make_review(obj))["allowed"] is True


def test_excluded_namespace_and_own_service_account_are_allowed_with_a_reason(
    client: FlaskClient, make_review: Review
) -> None:
    bad = split(weights=(0, 0))
    excluded = answer(client, make_review(bad, namespace="kube-system"))
    assert (
        excluded["allowed"] is True and "kube-system is excluded" in excluded["status"]["message"]
    )
    own = answer(client, make_review(bad, username="system:serviceaccount:smictl-system:smictl"))
    assert own["allowed"] is True and "own service account" in own["status"]["message"]


@pytest.mark.parametrize(
    "service_account",
    ["smictl-system/smictl", "spiffe://cluster.local/ns/smictl-system/sa/smictl"],
)
def test_the_own_service_account_is_recognised_in_either_form_serve_accepts(
    settings: Settings, policy_set: PolicySet, make_review: Review, service_account: str
) -> None:
    # The SPIFFE form was split at its first "/" (namespace `spiffe:`): the control plane's
    # own requests were then judged like anyone's, and refused.
    app = create_app(replace(settings, service_account=service_account), policies=policy_set)
    try:
        body = make_review(
            split(weights=(-1, 10)), username="system:serviceaccount:smictl-system:smictl"
        )
        own = answer(app.test_client(), body)
        assert own["allowed"] is True, own
        assert own["status"]["message"] == (
            "request by the control plane's own service account smictl-system/smictl"
        )
        other = answer(app.test_client(), make_review(split(weights=(-1, 10))))
        assert other["allowed"] is False and other["status"]["code"] == 422
    finally:
        app.extensions["smictl"].store.close()


def test_delete_and_dry_run_are_decided(client: FlaskClient, make_review: Review) -> None:
    gone = answer(client, make_review(None, old=split(), operation="DELETE", dry_run=True))
    assert gone["allowed"] is True


def test_decisions_are_counted_and_logged(
    client: FlaskClient, make_review: Review, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="smictl.decision"):
        answer(client, make_review(split(weights=(0, 0)), uid="log-1"))
    fields = [r.fields for r in caplog.records if r.name == "smictl.decision"]  # type: ignore[attr-defined]
    assert fields[-1]["uid"] == "log-1" and fields[-1]["decision"] == "invalid"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert (
        'smictl_admission_requests_total{decision="invalid",kind="TrafficSplit",'
        'operation="CREATE"} 1.0'
    ) in metrics
    assert "smictl_admission_duration_seconds_bucket" in metrics


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview"}', "apiVersion"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}', "uid"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": '
            b'{"uid": "u", "operation": "PATCH", "kind": {"kind": "X"}}}',
            "operation",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": '
            b'{"uid": "u", "operation": "CREATE", "kind": {"kind": "X"}, "object": 5}}',
            "object",
        ),
    ],
)
def test_malformed_reviews_get_400_with_a_reason(
    client: FlaskClient, body: bytes, reason: str
) -> None:
    r = client.post("/validate", data=body, content_type="application/json")
    assert r.status_code == 400
    assert reason in r.get_json()["error"]


def test_oversized_review_is_400(client: FlaskClient, make_review: Review) -> None:
    limit = client.application.extensions["smictl"].settings.max_review_bytes
    body = make_review(split())
    body["request"]["object"]["metadata"]["annotations"] = {"pad": "x" * limit}
    r = client.post("/validate", json=body)
    assert r.status_code == 400 and "exceeds" in r.get_json()["error"]


def every_kind_and_version() -> list[tuple[str, str]]:
    from smi.apis.registry import supported_versions

    return [
        (kind, f"{group}/{version}")
        for group, kinds in supported_versions().items()
        if group != "metrics.smi-spec.io"  # read-only API responses, never admitted
        for kind, versions in kinds.items()
        for version in versions
    ]


NEWEST: dict[str, dict[str, Any]] = {
    "TrafficTarget": {
        "apiVersion": "access.smi-spec.io/v1alpha3",
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
            "rules": [{"kind": "TCPRoute", "name": "db"}],
            "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}],
        },
    },
    "IdentityBinding": {
        "apiVersion": "access.smi-spec.io/v1alpha4",
        "spec": {"schemes": {"serviceAccount": "web"}},
    },
    "HTTPRouteGroup": {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "spec": {"matches": [{"name": "all", "pathRegex": "/.*"}]},
    },
    "TCPRoute": {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "spec": {"matches": {"ports": [5432]}},
    },
    "UDPRoute": {"apiVersion": "specs.smi-spec.io/v1alpha4", "spec": {"matches": {"ports": [53]}}},
    "TrafficSplit": {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": 1}]},
    },
}


@pytest.mark.parametrize(("kind", "api_version"), every_kind_and_version())
def test_every_smi_kind_and_version_is_admitted(
    client: FlaskClient, make_review: Review, kind: str, api_version: str
) -> None:
    from smi.conversion import convert_document

    newest = {
        **NEWEST[kind],
        "kind": kind,
        "metadata": {"name": "obj", "namespace": "shop", "labels": {"owner": "team"}},
    }
    obj = convert_document(newest, to=api_version)
    response = answer(client, make_review(obj, uid=f"{kind}-{api_version}"))
    assert response["allowed"] is True, response
