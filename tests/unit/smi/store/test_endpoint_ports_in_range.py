"""An endpoint no peer could dial never reaches the MeshPolicy. Since the proxies read a policy
strictly, one endpoint with port 0 (from a pod's own `--inbound 0:8080`) made every proxy
refuse the whole policy: running ones kept a stale one, new sidecars never became ready."""

from __future__ import annotations

from typing import Any

import pytest

from smi.compiler.build import compile as compile_policy
from smi.compiler.ir import Endpoint
from smi.compiler.ir.model import MeshPolicy
from smi.store.base import Snapshot
from smi.store.endpoints import EndpointIndex
from webhook.plane import endpoints_of

SLICE = {
    "kind": "EndpointSlice",
    "metadata": {
        "name": "web-abc",
        "namespace": "shop",
        "labels": {"kubernetes.io/service-name": "web"},
    },
    "ports": [{"port": 8080}],
    "endpoints": [
        {
            "addresses": ["10.0.0.5"],
            "conditions": {"ready": True},
            "targetRef": {"kind": "Pod", "name": "web-1"},
        }
    ],
}


def _pod(inbound: str) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop"},
        "spec": {
            "serviceAccountName": "web",
            "containers": [
                {"name": "app"},
                {"name": "smictl-proxy", "args": ["proxy", "--inbound", inbound]},
            ],
        },
    }


@pytest.mark.parametrize(
    ("inbound", "ports"),
    [("15006:8080", [15006]), ("0:8080", []), ("70000:8080", []), ("²:8080", [])],
)
def test_the_served_policy_parses_and_holds_only_dialable_endpoints(
    inbound: str, ports: list[int]
) -> None:
    index = EndpointIndex()
    index.replace("Pod", [_pod(inbound)])
    index.replace("EndpointSlice", [SLICE])
    endpoints = endpoints_of(Snapshot(revision=3, endpoints=index.records()), trust_domain="td")
    policy = MeshPolicy.from_json(
        compile_policy([], revision=3, endpoints=endpoints).policy.to_json()
    )
    service = policy.services.get("shop/web")
    assert ([e.port for e in service.endpoints] if service else []) == ports


def test_the_compiler_leaves_out_an_endpoint_with_a_port_out_of_range() -> None:
    endpoints = {"shop/web": [Endpoint("10.0.0.5", 0, "spiffe://td/ns/shop/sa/web")]}
    policy = compile_policy([], revision=1, endpoints=endpoints).policy
    MeshPolicy.from_json(policy.to_json())
    service = policy.services.get("shop/web")
    assert service is None or service.endpoints == ()
