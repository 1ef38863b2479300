"""Sidecar injection under unusual but realistic AdmissionReviews, the way kube-apiserver sends
them: every answer is a well-shaped AdmissionReview with the request's uid, and every patch
applies to the object it was computed for and gives a Pod the Kubernetes models accept."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import jsonpatch
import pytest
from flask.testing import FlaskClient
from kubernetes.client import ApiClient, V1Pod

from webhook.injection import (
    INJECTED_KEY,
    PROXY_CONTAINER,
    InjectionConfig,
    decide,
)

Review = Callable[..., dict[str, Any]]
CONFIG = InjectionConfig(image="registry.local/smictl:1", control_plane_url="https://cp:8443")
OPT_IN = {"smictl.io/inject": "enabled"}
NS_OPT_IN = {"smictl.io/inject": "enabled"}


def pod(
    *,
    annotations: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web-1", "namespace": "shop"}
    if annotations is not None:
        meta["annotations"] = annotations
    if containers is None:
        containers = [{"name": "app", "image": "web:1", "ports": [{"containerPort": 8080}]}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"serviceAccountName": "web", "containers": containers, **spec},
    }


def as_v1_pod(obj: dict[str, Any]) -> V1Pod:
    """The object read by the kubernetes client's own models (required fields checked)."""
    result: V1Pod = ApiClient().deserialize(json.dumps(obj), "V1Pod", "application/json")
    return result


def patched(p: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    d = decide(p, namespace="shop", namespace_labels=labels or {}, config=CONFIG)
    assert d.inject, d.reason
    out: dict[str, Any] = jsonpatch.apply_patch(p, list(d.patch))
    as_v1_pod(out)
    return out


def env_of(p: dict[str, Any]) -> dict[str, str | None]:
    spec = p["spec"]
    [proxy] = [
        c
        for key in ("initContainers", "containers")
        for c in spec.get(key) or ()
        if c["name"] == PROXY_CONTAINER
    ]
    return {e["name"]: e.get("value") for e in proxy["env"]}


def mutate(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    """The answer's `response`, checked to be a well-shaped AdmissionReview answer."""
    r = client.post("/mutate", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    answer = r.get_json()
    assert answer["apiVersion"] == body["apiVersion"] and answer["kind"] == "AdmissionReview"
    response: dict[str, Any] = answer["response"]
    assert response["uid"] == body["request"]["uid"]
    assert response["allowed"] is True
    if "patch" in response:
        assert response["patchType"] == "JSONPatch"
    return response


def apply_answer(body: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    ops = json.loads(base64.b64decode(response["patch"]))
    assert all(op["op"] == "add" for op in ops)
    out: dict[str, Any] = jsonpatch.apply_patch(body["request"]["object"], ops)
    as_v1_pod(out)
    return out


# --- bugs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [None, {}, {"containers": []}, {"containers": None}],
    ids=["no-spec", "empty-spec", "empty-containers", "null-containers"],
)
def test_a_pod_without_containers_gets_no_patch_that_cannot_apply(
    spec: dict[str, Any] | None,
) -> None:
    # The patch used to `add` to /spec/containers/-, a path that does not exist: the API server
    # failed the request with an internal patch error instead of its own "containers: Required".
    p: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}
    if spec is not None:
        p["spec"] = spec
    d = decide(p, namespace="shop", namespace_labels=NS_OPT_IN, config=CONFIG)
    if d.patch:
        jsonpatch.apply_patch(p, list(d.patch))  # raises without the fix
    assert not d.inject and d.patch == () and d.reason == "the pod has no containers"


def test_a_pod_without_metadata_gets_its_metadata_created() -> None:
    p = pod()
    del p["metadata"]
    out = patched(p, NS_OPT_IN)
    assert out["metadata"] == {"annotations": {INJECTED_KEY: "true"}}


@pytest.mark.parametrize("field", ["metadata", "spec"])
def test_an_empty_list_in_place_of_metadata_or_spec_is_malformed(field: str) -> None:
    p = pod()
    p[field] = []
    d = decide(p, namespace="shop", namespace_labels=NS_OPT_IN, config=CONFIG)
    assert not d.inject and d.patch == ()
    assert d.reason == d.refusal == f"not a well-formed Pod: {field}: not an object"


@pytest.mark.parametrize(
    "value", ["0", "70000", "15006", "15001", "15020", "00015006", "0" * 5000 + "70000"]
)
def test_an_app_port_the_proxy_cannot_forward_to_is_ignored(value: str) -> None:
    # 70000 stops the proxy at start-up ("not a port number"), 0 refuses every connection and
    # the proxy's own ports make the inbound listener forward to itself.
    out = patched(pod(annotations={**OPT_IN, "smictl.io/app-port": value}))
    assert env_of(out)["SMI_PROXY_INBOUND"] == "15006:8080"


def test_a_five_thousand_digit_app_port_is_ignored_not_a_500(
    client: FlaskClient, make_review: Review
) -> None:
    # int() refuses strings of more than 4300 digits (ValueError), and the API server accepts
    # such an annotation value: the review was answered 500.
    body = make_review(pod(annotations={**OPT_IN, "smictl.io/app-port": "1" * 5000}))
    out = apply_answer(body, mutate(client, body))
    assert env_of(out)["SMI_PROXY_INBOUND"] == "15006:8080"


def test_the_app_port_is_the_first_tcp_port_not_a_udp_one() -> None:
    # (A declared TCP port that is the proxy's is refused: see the collision test below.)
    containers = [
        {
            "name": "statsd",
            "image": "statsd:1",
            "ports": [
                {"containerPort": 9125, "protocol": "UDP"},
                {"containerPort": 15020, "protocol": "UDP"},
                {"containerPort": 9102, "protocol": "TCP"},
            ],
        }
    ]
    out = patched(pod(annotations=OPT_IN, containers=containers))
    assert env_of(out)["SMI_PROXY_INBOUND"] == "15006:9102"
    only_udp = [
        {"name": "dns", "image": "dns:1", "ports": [{"containerPort": 53, "protocol": "UDP"}]}
    ]
    assert "SMI_PROXY_INBOUND" not in env_of(patched(pod(annotations=OPT_IN, containers=only_udp)))


# --- probed and fine (kept as regression tests) ---------------------------------------------------


def test_reinvocation_gives_no_second_patch_and_the_patched_pod_is_valid(
    client: FlaskClient, make_review: Review
) -> None:
    body = make_review(pod(annotations=OPT_IN), uid="first")
    once = apply_answer(body, mutate(client, body))
    assert [c["name"] for c in once["spec"]["containers"]] == ["app"]
    assert [c["name"] for c in once["spec"]["initContainers"]] == [PROXY_CONTAINER]
    again = mutate(client, make_review(once, uid="second"))
    assert "patch" not in again and "patchType" not in again


def test_keys_with_slash_and_tilde_are_escaped_and_existing_maps_are_kept() -> None:
    annotations = {**OPT_IN, "a~b/c": "1", "ünï/cödé~0": "✓"}
    out = patched(pod(annotations=annotations, volumes=[{"name": "data", "emptyDir": {}}]))
    assert out["metadata"]["annotations"] == {**annotations, INJECTED_KEY: "true"}
    assert [v["name"] for v in out["spec"]["volumes"]] == ["data", "smictl-certs", "smictl-token"]


def test_a_bare_pod_from_a_deployment_is_injected_with_its_namespace_from_the_request(
    client: FlaskClient, make_review: Review
) -> None:
    # CREATE from a ReplicaSet: generateName, no name, no namespace in the object, no
    # annotations, volumes, initContainers or serviceAccountName; the namespace opts in.
    client.application.extensions["smictl"].store.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "shop", "labels": NS_OPT_IN},
            }
        ]
    )
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "web-7d9f8-"},
        "spec": {"containers": [{"name": "app", "image": "web:1"}]},
    }
    body = make_review(obj, namespace="shop", dry_run=True)
    out = apply_answer(body, mutate(client, body))
    assert out["metadata"] == {"generateName": "web-7d9f8-", "annotations": {INJECTED_KEY: "true"}}
    assert env_of(out)["SMI_PROXY_IDENTITY"] == "shop/default"
    assert "SMI_PROXY_INBOUND" not in env_of(out)


@pytest.mark.parametrize("operation", ["UPDATE", "DELETE", "CONNECT"])
def test_operations_other_than_create_are_allowed_unpatched(
    client: FlaskClient, make_review: Review, operation: str
) -> None:
    p = pod(annotations=OPT_IN)
    obj = None if operation == "DELETE" else p
    old = None if operation == "CONNECT" else p
    response = mutate(client, make_review(obj, operation=operation, old=old))
    assert "patch" not in response


def test_non_pod_kinds_and_opted_out_or_host_network_pods_are_not_patched(
    client: FlaskClient, make_review: Review
) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "shop", "annotations": OPT_IN},
        "spec": {"template": {"spec": {"containers": []}}},
    }
    for obj in (
        deployment,
        pod(annotations={"smictl.io/inject": "disabled"}),
        pod(annotations={"smictl.io/inject": "Enabled"}),
        pod(annotations=OPT_IN, hostNetwork=True),
    ):
        assert "patch" not in mutate(client, make_review(obj))


def test_a_huge_pod_is_patched_with_one_sidecar_add(
    client: FlaskClient, make_review: Review
) -> None:
    containers = [
        {
            "name": f"c{i}",
            "image": "x",
            "env": [{"name": f"E{j}", "value": "v" * 200} for j in range(50)],
        }
        for i in range(40)
    ]
    body = make_review(pod(annotations=OPT_IN, containers=containers))
    response = mutate(client, body)
    ops = json.loads(base64.b64decode(response["patch"]))
    assert [op["path"] for op in ops] == [
        "/spec/initContainers",
        "/spec/volumes",
        "/metadata/annotations/smictl.io~1injected",
    ]
    out = apply_answer(body, response)
    assert len(out["spec"]["containers"]) == 40 and len(out["spec"]["initContainers"]) == 1


def test_an_app_port_with_leading_zeros_is_still_a_port() -> None:
    out = patched(pod(annotations={**OPT_IN, "smictl.io/app-port": "0" * 20 + "9090"}))
    assert env_of(out)["SMI_PROXY_INBOUND"] == "15006:9090"


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        (
            {"containers": [{"name": "app", "ports": [{"containerPort": 15006}]}]},
            "spec.containers[0].ports[0]: port 15006 is the injected proxy's (15001, 15006, 15020)",
        ),
        (
            {"containers": [{"name": "app"}], "volumes": [{"name": "smictl-certs"}]},
            "spec.volumes[0]: the name 'smictl-certs' is the injected proxy's",
        ),
        (
            {"containers": [{"name": "app"}], "initContainers": [{"name": "smictl-proxy"}]},
            "spec.initContainers already has a container named 'smictl-proxy'",
        ),
    ],
)
def test_an_opted_in_pod_the_proxy_would_collide_with_is_refused_not_left_unprotected(
    spec: dict[str, Any], why: str
) -> None:
    pod = {"metadata": {"annotations": {"smictl.io/inject": "enabled"}}, "spec": spec}
    decision = decide(pod, namespace="shop", config=CONFIG, namespace_labels={})
    assert (decision.inject, decision.patch, decision.refusal) == (False, (), why)
    udp = {"name": "app", "ports": [{"containerPort": 15006, "protocol": "UDP"}]}
    ok = decide(
        {**pod, "spec": {"containers": [udp]}}, namespace="shop", config=CONFIG, namespace_labels={}
    )
    assert ok.inject and not ok.refusal  # a UDP port does not collide with the TCP listener


def test_mutate_answers_a_colliding_opted_in_pod_with_422_and_the_reason(
    client: FlaskClient, make_review: Review
) -> None:
    body = make_review(pod(annotations=OPT_IN, volumes=[{"name": "smictl-token"}]))
    answer = client.post("/mutate", json=body).get_json()["response"]
    assert answer["allowed"] is False and "patch" not in answer
    assert answer["status"]["code"] == 422
    assert answer["status"]["message"] == (
        "smictl cannot inject its proxy into this pod: "
        "spec.volumes[0]: the name 'smictl-token' is the injected proxy's"
    )
