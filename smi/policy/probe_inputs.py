"""One small, valid object of each SMI kind, as the input document a policy would get for it.

Loading a policy set probes every policy in a child (`smi.policy.engine.check`). On an empty
input most bodies stop at their first `input.hub...` reference, so an unknown function, a
runaway recursion or a rule conflict further down only showed at the first real admission,
failing every one of them without a file or line. Probing each policy on a representative
object of each kind it applies to reaches those bodies at load, where the error can be refused
with its line. The objects go through the same loading and hub conversion as admitted ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from smi.loading import load_object
from smi.policy.input import create_request, hub_document, input_document

_META = {"name": "probe", "namespace": "default", "labels": {"app": "probe"}}
_SUBJECT = {"kind": "ServiceAccount", "name": "client", "namespace": "default"}
_OBJECTS: tuple[dict[str, Any], ...] = (
    {
        "apiVersion": "access.smi-spec.io/v1alpha3",
        "kind": "TrafficTarget",
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "default"},
            "rules": [{"kind": "HTTPRouteGroup", "name": "probe", "matches": ["all"]}],
            "sources": [_SUBJECT],
        },
    },
    {
        "apiVersion": "access.smi-spec.io/v1alpha4",
        "kind": "IdentityBinding",
        "spec": {"schemes": {"podLabelSelector": {"matchLabels": {"app": "probe"}}}},
    },
    {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "spec": {
            "matches": [
                {"name": "all", "pathRegex": "/api/.*", "methods": ["GET"]},
                {"name": "hdr", "headers": {"x-probe": "1"}},
            ]
        },
    },
    {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "TCPRoute",
        "spec": {"matches": {"ports": [8080]}},
    },
    {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "UDPRoute",
        "spec": {"matches": {"ports": [53]}},
    },
    {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "spec": {
            "service": "api",
            "backends": [{"service": "api-v1", "weight": 90}, {"service": "api-v2", "weight": 10}],
        },
    },
)


@cache
def _documents() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for template in _OBJECTS:
        loaded = load_object({**template, "metadata": dict(_META)}, filename="<probe>")
        if not loaded.ok or not loaded.resources:
            continue  # a kind this build cannot load is not probed (never a load error)
        resource = loaded.resources[0]
        request = create_request(resource, uid="smictl-probe")
        out[resource.kind] = input_document(
            request, hub=hub_document(resource.obj), old_hub=None, inventory={}
        )
    return out


def probe_inputs(kinds: Iterable[str]) -> list[tuple[str, Mapping[str, Any]]]:
    """(kind, input document) for each of `kinds` there is a representative object of."""
    documents = _documents()
    return [(kind, documents[kind]) for kind in kinds if kind in documents]
