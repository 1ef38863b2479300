"""Injection details where the patched pod was not the one the docs describe: an init container
on a proxy port beside a native sidecar, a review without a namespace, an empty default
container, a custom resource named Pod, the drain time a short grace period leaves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonpatch
import pytest
from flask.testing import FlaskClient

from webhook.injection import (
    DEFAULT_CONTAINER_KEY,
    NATIVE_SIDECAR_KEY,
    WAIT_BEFORE_EXIT_KEY,
    InjectionConfig,
    _wait_before_exit,
    decide,
)

Review = Callable[..., dict[str, Any]]
CONFIG = InjectionConfig(image="registry.local/smictl:1", control_plane_url="https://cp:8443")
OPT_IN = {"smictl.io/inject": "enabled"}
MIGRATE = {"name": "migrate", "image": "m:1", "ports": [{"containerPort": 15006}]}


def pod(annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "annotations": annotations},
        "spec": {"serviceAccountName": "web", "containers": [{"name": "app"}], **spec},
    }


def test_an_init_container_on_a_proxy_port_is_refused_beside_a_native_sidecar() -> None:
    """The native proxy starts before the init containers: `migrate` could not bind 15006 and
    the pod would stay in Init."""
    decision = decide(
        pod(OPT_IN, initContainers=[MIGRATE]), namespace="shop", config=CONFIG, namespace_labels={}
    )
    assert not decision.inject and decision.refusal == (
        "spec.initContainers[0].ports[0]: port 15006 is the injected proxy's (15001, 15006, 15020)"
    )


def test_an_init_container_on_a_proxy_port_runs_before_a_regular_proxy() -> None:
    regular = {**OPT_IN, NATIVE_SIDECAR_KEY: "false"}
    decision = decide(
        pod(regular, initContainers=[MIGRATE]), namespace="shop", config=CONFIG, namespace_labels={}
    )
    assert decision.inject and not decision.refusal


def test_a_pod_without_a_namespace_is_refused_not_given_identity_slash_default() -> None:
    decision = decide(pod(OPT_IN), namespace="", config=CONFIG, namespace_labels={})
    assert not decision.inject and decision.refusal == (
        "not a well-formed Pod: metadata.namespace: missing, and the review names none"
    )


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_default_container_annotation_is_set_to_the_app(value: str) -> None:
    """kubectl ignores an empty value and takes the first container: the proxy."""
    p = pod({**OPT_IN, NATIVE_SIDECAR_KEY: "false", DEFAULT_CONTAINER_KEY: value})
    decision = decide(p, namespace="shop", config=CONFIG, namespace_labels={})
    out = jsonpatch.apply_patch(p, list(decision.patch))
    assert out["spec"]["containers"][0]["name"] == "smictl-proxy"
    assert out["metadata"]["annotations"][DEFAULT_CONTAINER_KEY] == "app"


def test_a_default_container_the_pod_names_is_kept() -> None:
    p = pod({**OPT_IN, NATIVE_SIDECAR_KEY: "false", DEFAULT_CONTAINER_KEY: "sidecar"})
    out = jsonpatch.apply_patch(
        p, list(decide(p, namespace="shop", config=CONFIG, namespace_labels={}).patch)
    )
    assert out["metadata"]["annotations"][DEFAULT_CONTAINER_KEY] == "sidecar"


@pytest.mark.parametrize(("grace", "wait", "drain"), [(4, 0, 4), (12, 2, 10), (0, 0, 0)])
def test_the_clamp_warning_says_the_drain_time_the_grace_period_leaves(
    grace: int, wait: int, drain: int
) -> None:
    got, warnings = _wait_before_exit(
        {WAIT_BEFORE_EXIT_KEY: "5"}, {"terminationGracePeriodSeconds": grace}
    )
    assert got == wait
    assert warnings == [
        f"{WAIT_BEFORE_EXIT_KEY}=5: the proxy waits {wait}s before exiting, so that "
        f"terminationGracePeriodSeconds ({grace}s) leaves it {drain}s to drain; "
        "raise the grace period to wait longer"
    ]


def test_mutate_leaves_a_custom_resource_named_pod_alone(
    client: FlaskClient, make_review: Review
) -> None:
    body = make_review({**pod(OPT_IN), "apiVersion": "example.com/v1"})
    answer = client.post("/mutate", json=body).get_json()["response"]
    assert answer["allowed"] is True and "patch" not in answer


def test_mutate_refuses_a_pod_review_without_a_namespace(
    client: FlaskClient, make_review: Review
) -> None:
    p = pod(OPT_IN)
    del p["metadata"]["namespace"]
    answer = client.post("/mutate", json=make_review(p, namespace="")).get_json()["response"]
    assert answer["allowed"] is False and answer["status"]["code"] == 422
    assert "metadata.namespace: missing" in answer["status"]["message"]


@pytest.mark.parametrize("path", ["/mutate", "/convert"])
def test_a_uid_that_is_not_a_string_is_told_so(
    client: FlaskClient, make_review: Review, path: str
) -> None:
    if path == "/mutate":
        body = make_review(pod(OPT_IN))
    else:
        body = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {"desiredAPIVersion": "split.smi-spec.io/v1alpha4", "objects": []},
        }
    body["request"]["uid"] = 42
    r = client.post(path, json=body)
    assert r.status_code == 400
    assert "request.uid: int, not a string" in r.get_data(as_text=True)
