"""Hostile and malformed requests: every one gets a 4xx with a reason or a well-shaped review,
never a 500, and no client can hold a connection open without sending a request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from mesh_reader import reader_client
from test_wsgiloop import Harness

from smi.identity import Identity
from smi.pki import generate_key, make_csr
from webhook.auth import BootstrapTokens, token_key
from webhook.wsgiloop import Limits

Review = Callable[..., dict[str, Any]]

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


@pytest.mark.parametrize("path", ["/validate", "/mutate", "/convert", "/v1/data/smictl/authz"])
@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_json_nested_100k_levels_deep_is_a_400(app: Flask, path: str, body: bytes) -> None:
    client = reader_client(app)  # a workload's: the Data API asks who is calling
    r = client.post(path, data=body, content_type="application/json")
    assert r.status_code == 400, r.get_data(as_text=True)
    assert "nested too deeply" in r.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/validate", "/mutate", "/convert", "/v1/data/smictl/authz"])
@pytest.mark.parametrize(
    ("number", "reason"),
    [
        (b"NaN", "request body is not JSON: NaN is not a JSON number (RFC 8259)"),
        (b"Infinity", "request body is not JSON: Infinity is not a JSON number (RFC 8259)"),
        (b"-Infinity", "request body is not JSON: -Infinity is not a JSON number (RFC 8259)"),
        (
            b"1e400",
            "request body is not JSON this server accepts: the number 1e400 is beyond the "
            "range of a double",
        ),
        (
            b"-1e400",
            "request body is not JSON this server accepts: the number -1e400 is beyond the "
            "range of a double",
        ),
        (
            b"1" * 5000,
            "request body is not JSON this server accepts: a number with more than 4300 digits",
        ),
    ],
    ids=["nan", "infinity", "minus-infinity", "1e400", "minus-1e400", "5000-digits"],
)
def test_numbers_json_has_not_are_a_400_with_a_plain_reason(
    app: Flask, path: str, number: bytes, reason: str
) -> None:
    # Python's json module reads the first five as floats (nan, inf) and gave the last a
    # reason that told the client to call `sys.set_int_max_str_digits()`.
    client = reader_client(app)  # a workload's: the Data API asks who is calling
    body = b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "x": ' + number
    r = client.post(path, data=body + b"}", content_type="application/json")
    assert r.status_code == 400, r.get_data(as_text=True)
    answer = r.get_json()
    assert answer.get("error", answer.get("message")) == reason  # OPA's error shape on /v1/data


def test_finite_numbers_with_a_fraction_or_an_exponent_are_still_read(
    client: FlaskClient, make_review: Review
) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"}}
    body = json.dumps(make_review(pod)).replace('"name": "p"', '"name": "p", "x": [1.5e308, -0.0]')
    r = client.post("/mutate", data=body, content_type="application/json")
    assert r.status_code == 200, r.get_data(as_text=True)


def test_a_lone_surrogate_is_a_400_wherever_it_would_be_encoded(app: Flask) -> None:
    client = reader_client(app)  # a workload's: the Data API asks who is calling
    plane = client.application.extensions["smictl"]
    tokens = BootstrapTokens(key=token_key(plane.ca.key), trust_domain="cluster.local")
    auth = {"Authorization": f"Bearer {tokens.issue(Identity.parse('shop/web'))}"}
    r = client.post(
        "/mesh/v1/endpoints",
        data=b'{"address": "\\ud800", "port": 15006, "services": ["web"]}',
        content_type="application/json",
        headers=auth,
    )
    assert r.status_code == 400, r.get_data(as_text=True)
    assert "surrogate" in r.get_json()["error"]
    r = client.post(
        "/mesh/v1/certificates",
        data=b'{"csr": "-----BEGIN CERTIFICATE REQUEST-----\\udfff"}',
        content_type="application/json",
        headers=auth,
    )
    assert r.status_code == 400, r.get_data(as_text=True)
    r = client.post(
        "/v1/data/smi/admission/meta/owner_label/violation",
        data=b'{"input": {"review": {"object": {"metadata": {"name": "\\ud800"}}}}}',
        content_type="application/json",
    )
    assert r.status_code == 400, r.get_data(as_text=True)


def test_a_surrogate_pair_is_still_accepted(client: FlaskClient, make_review: Review) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"}}
    body = json.dumps(make_review(pod)).replace('"name": "p"', '"name": "p\\ud83d\\ude00"')
    r = client.post("/mutate", data=body, content_type="application/json")
    assert r.status_code == 200, r.get_data(as_text=True)


@pytest.mark.parametrize(
    ("metadata", "spec", "field"),
    [
        (
            {"name": "p", "namespace": "shop", "annotations": ["x"]},
            {"containers": []},
            "metadata.annotations: not an object",
        ),
        ("x", {}, "metadata: not an object"),
        ({"name": "p", "namespace": "shop"}, "x", "spec: not an object"),
        (
            {"name": "p", "namespace": "shop"},
            {"containers": "x"},
            "spec.containers: not a list of objects",
        ),
        (
            {"name": "p", "namespace": "shop"},
            {"containers": [5]},
            "spec.containers: not a list of objects",
        ),
        (
            {"name": "p", "namespace": "shop"},
            {"containers": [{"name": "a", "ports": "x"}]},
            "spec.containers[0].ports: not a list of objects",
        ),
        (
            {"name": "p", "namespace": "shop"},
            {"containers": [{"name": "a", "ports": [1]}]},
            "spec.containers[0].ports: not a list of objects",
        ),
        (
            {"name": "p", "namespace": "shop"},
            {"serviceAccountName": 5, "containers": []},
            "spec.serviceAccountName: not text",
        ),
        (
            {"name": "p", "namespace": "shop"},
            {"volumes": "x", "containers": []},
            "spec.volumes: not a list of objects",
        ),
    ],
)
def test_mutate_answers_a_malformed_pod_with_a_review_not_a_500(
    client: FlaskClient, make_review: Review, metadata: Any, spec: Any, field: str
) -> None:
    if isinstance(metadata, dict):
        metadata["annotations"] = metadata.get("annotations") or {"smictl.io/inject": "enabled"}
    body = make_review({"apiVersion": "v1", "kind": "Pod", "metadata": {}}, namespace="")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
    body["request"]["object"] = pod
    r = client.post("/mutate", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    doc = r.get_json()
    assert (doc["apiVersion"], doc["kind"]) == (body["apiVersion"], "AdmissionReview")
    response = doc["response"]
    assert response["uid"] == body["request"]["uid"]
    # Refused, not passed over: an opted-in pod would otherwise run without its proxy.
    assert response["allowed"] is False and "patch" not in response
    assert response["status"]["code"] == 422
    assert response["status"]["message"] == (
        f"smictl cannot inject its proxy into this pod: not a well-formed Pod: {field}"
    )


def test_a_non_ascii_digit_app_port_is_ignored(client: FlaskClient, make_review: Review) -> None:
    annotations = {"smictl.io/inject": "enabled", "smictl.io/app-port": "\u00b2"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop", "annotations": annotations},
        "spec": {"containers": [{"name": "app"}]},
    }
    r = client.post("/mutate", json=make_review(pod))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["response"]["patchType"] == "JSONPatch"


def test_an_infinite_port_is_a_400_from_the_data_api(app: Flask) -> None:
    client = reader_client(app)  # a workload's: the Data API asks who is calling
    r = client.post(
        "/v1/data/smictl/authz",
        data=b'{"input": {"source": "shop/a", "destination": "shop/b", "port": 1e999}}',
        content_type="application/json",
    )
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.get_json()["code"] == "invalid_parameter"


def test_a_huge_certificate_lifetime_is_capped_not_a_500(client: FlaskClient) -> None:
    plane = client.application.extensions["smictl"]
    tokens = BootstrapTokens(key=token_key(plane.ca.key), trust_domain="cluster.local")
    identity = Identity.parse("shop/web")
    r = client.post(
        "/mesh/v1/certificates",
        json={"csr": make_csr(generate_key(), identity).decode(), "ttlSeconds": 10**30},
        headers={"Authorization": f"Bearer {tokens.issue(identity)}"},
    )
    assert r.status_code == 201, r.get_data(as_text=True)


def test_line_breaks_before_a_request_do_not_keep_a_connection_open() -> None:
    h = Harness(limits=Limits(read_seconds=0.2, keepalive_seconds=5))
    try:
        for _ in range(16):  # 0.8 s of a CRLF every 50 ms: each used to push the deadline back
            if h.transport.closed:
                break
            h.feed(b"\r\n")
            h.loop.run_until_complete(asyncio.sleep(0.05))
        assert h.transport.closed
    finally:
        h.close()


def test_a_request_begun_while_a_pool_request_runs_still_has_a_deadline() -> None:
    h = Harness(
        limits=Limits(read_seconds=0.2, keepalive_seconds=5),
        inline=lambda environ: environ["PATH_INFO"] != "/pool",
    )
    try:
        h.feed(b"GET /pool HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost:")
        h.settle(lambda: len(h.responses()) == 1)
        h.settle(lambda: h.transport.closed, timeout=1.0)
        assert h.responses()[-1].startswith(b"408 ")
    finally:
        h.close()
