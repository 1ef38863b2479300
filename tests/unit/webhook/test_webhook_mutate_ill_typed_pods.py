"""/mutate on pods whose fields have the wrong type: a 422 that names the field, never a 500.

The API server only sends typed Pods, but the webhook also answers other callers; a list in
place of a containerPort once reached a set lookup (`unhashable type: 'list'`) and a number in
place of an init container's ports a loop (`'int' object is not iterable`).
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import jsonpatch
import pytest
from flask.testing import FlaskClient

Review = Callable[..., dict[str, Any]]

# One value of every JSON type, and the falsy ones that `x or []` used to read as "absent".
VALUES: tuple[Any, ...] = (0, -1, 1.5, True, "x", "", [], {}, [5], [{}], ["x"], {"a": 1})
FIELD_PATH = re.compile(r"(?:metadata|spec)(?:\.\w+|\[\d+\]|\[\"[^\"]+\"\])*: ")


def base_pod() -> dict[str, Any]:
    """An opted-in pod with every level the injector reads: annotations, containers and their
    ports, a native-sidecar init container with ports, volumes."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "annotations": {
                "smictl.io/inject": "enabled",
                "smictl.io/app-port": "8080",
                "smictl.io/native-sidecar": "false",
                "smictl.io/proxy-wait-before-exit-seconds": "5",
            },
        },
        "spec": {
            "serviceAccountName": "web",
            "containers": [
                {"name": "app", "image": "x", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}
            ],
            "initContainers": [
                {
                    "name": "log",
                    "image": "x",
                    "restartPolicy": "Always",
                    "ports": [{"containerPort": 9000}],
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "terminationGracePeriodSeconds": 45,
        },
    }


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key and index below `node` (not the root)."""
    children = node.items() if isinstance(node, dict) else enumerate(node)
    for key, child in children:
        yield (*prefix, key)
        if isinstance(child, dict | list):
            yield from paths(child, (*prefix, key))


def substituted(pod: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(pod)
    parent: Any = out
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = copy.deepcopy(value)
    return out


def mutate(client: FlaskClient, make_review: Review, pod: dict[str, Any]) -> dict[str, Any]:
    body = make_review(base_pod())  # the review's own fields stay well-formed
    body["request"]["object"] = pod
    r = client.post("/mutate", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    response: dict[str, Any] = r.get_json()["response"]
    assert response["uid"] == body["request"]["uid"] and isinstance(response["allowed"], bool)
    return response


FUZZED = [
    (path, value)
    for path in paths(base_pod())
    if path[0] in ("metadata", "spec") and path[:2] != ("metadata", "name")
    for value in VALUES
]


@pytest.mark.parametrize(
    ("path", "value"), FUZZED, ids=[f"{'.'.join(map(str, p))}={v!r}" for p, v in FUZZED]
)
def test_every_substituted_type_gets_a_review_a_refusal_names_the_field(
    client: FlaskClient, make_review: Review, path: tuple[Any, ...], value: Any
) -> None:
    pod = substituted(base_pod(), path, value)
    response = mutate(client, make_review, pod)
    if not response["allowed"]:
        status = response["status"]
        assert status["code"] == 422 and "patch" not in response
        assert FIELD_PATH.search(status["message"]), status["message"]
        assert "\n" not in status["message"]
    elif "patch" in response:  # the patch applies to the pod as sent
        ops = json.loads(base64.b64decode(response["patch"]))
        jsonpatch.apply_patch(pod, ops)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"containers": [{"name": "app", "ports": [{"containerPort": [8080]}]}]},
            "spec.containers[0].ports[0].containerPort: not an integer",
        ),
        (
            {"containers": [{"name": "app", "ports": [{"containerPort": {}}]}]},
            "spec.containers[0].ports[0].containerPort: not an integer",
        ),
        (
            {
                "containers": [{"name": "app"}],
                "initContainers": [
                    {"name": "i", "image": "x", "restartPolicy": "Always", "ports": -1}
                ],
            },
            "spec.initContainers[0].ports: not a list of objects",
        ),
        (
            {"containers": [{"name": "app"}], "ephemeralContainers": 5},
            "spec.ephemeralContainers: not a list of objects",
        ),
    ],
    ids=["containerPort-list", "containerPort-object", "init-ports-number", "ephemeral-number"],
)
def test_the_audited_pods_are_refused_with_the_field(
    client: FlaskClient, make_review: Review, spec: dict[str, Any], message: str
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": "shop",
            "annotations": {"smictl.io/inject": "enabled"},
        },
        "spec": spec,
    }
    response = mutate(client, make_review, pod)
    assert response["allowed"] is False and response["status"]["code"] == 422
    assert response["status"]["message"].endswith(f"not a well-formed Pod: {message}")


def test_a_non_text_annotation_the_injector_reads_is_refused(
    client: FlaskClient, make_review: Review
) -> None:
    pod = base_pod()
    pod["metadata"]["annotations"]["smictl.io/app-port"] = 8080
    response = mutate(client, make_review, pod)
    assert response["status"]["code"] == 422
    assert response["status"]["message"].endswith(
        'metadata.annotations["smictl.io/app-port"]: not text'
    )
