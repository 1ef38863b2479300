"""Property: whatever a document holds, `registry.parse` fails only with pydantic's
ValidationError or LookupError (which the loader maps to SMI codes), never anything else."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from smi.apis import registry
from smi.apis.meta import LOSSY_ANNOTATION

FIELDS = [
    "metadata", "name", "namespace", "annotations", "labels", LOSSY_ANNOTATION, "spec",
    "destination", "sources", "rules", "specs", "kind", "port", "group", "matches", "pathRegex",
    "methods", "headers", "ports", "service", "backends", "weight", "apiGroup", "schemes",
    "podLabelSelector", "matchLabels", "spiffeIdentities", "serviceAccount", "resource", "edge",
    "direction", "side", "timestamp", "window", "metrics", "value", "items", "value", "was",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["500m", "1u", "1e99", "1Ki", "{}", '{"backends":{"value":[],"was":"x"}}']),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.integers(0, 3)), inner, max_size=5),
    ),
    max_leaves=25,
)
served = st.sampled_from([(s.api_version, s.kind) for s in registry.served()])


@settings(max_examples=400, deadline=None)
@given(served, st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5))
def test_parse_fails_only_with_validation_or_lookup_errors(
    entry: tuple[str, str], body: dict[str, Any]
) -> None:
    api_version, kind = entry
    doc = {**body, "apiVersion": api_version, "kind": kind}
    try:
        hub_obj = registry.parse(doc)
    except (ValidationError, LookupError):
        return
    # whatever parsed renders in its own version, and that rendering is a fixed point
    # (not hub equality: JSON turns a non-string key deep in metadata into a string)
    once = registry.render(hub_obj, api_version)
    assert registry.render(registry.parse(once), api_version) == once


VALID: list[dict[str, Any]] = [
    {
        "apiVersion": "access.smi-spec.io/v1alpha1",
        "kind": "TrafficTarget",
        "metadata": {"name": "t", "namespace": "shop"},
        "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop", "port": 80},
        "specs": [{"kind": "HTTPRouteGroup", "name": "r", "matches": ["m"]}],
        "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}],
    },
    {
        "apiVersion": "access.smi-spec.io/v1alpha4",
        "kind": "IdentityBinding",
        "metadata": {"name": "b"},
        "spec": {
            "schemes": {
                "podLabelSelector": {"matchLabels": {"app": "a"}},
                "spiffeIdentities": ["x"],
                "serviceAccount": "a",
            }
        },
    },
    {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "g"},
        "spec": {
            "matches": [
                {"name": "m", "pathRegex": "/x", "methods": ["GET"], "headers": [{"a": "b"}]},
                {"name": "n", "headers": {"c": "d"}},
            ]
        },
    },
    {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "TCPRoute",
        "metadata": {"name": "t"},
        "spec": {"matches": {"ports": [80, 443]}},
    },
    {
        "apiVersion": "split.smi-spec.io/v1alpha1",
        "kind": "TrafficSplit",
        "metadata": {"name": "s", "annotations": {"a": "b"}},
        "spec": {"service": "web", "backends": [{"service": "a", "weight": "500m"}]},
    },
    {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {"name": "s"},
        "spec": {
            "service": "web",
            "matches": [{"kind": "HTTPRouteGroup", "name": "ab"}],
            "backends": [{"service": "a", "weight": 5}],
        },
    },
]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _replace(doc[head], rest, value)}
    return [(_replace(v, rest, value) if i == head else v) for i, v in enumerate(doc)]


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_one_bad_value_in_a_valid_document_is_a_validation_error_or_fine(data: Any) -> None:
    doc = data.draw(st.sampled_from(VALID))
    path = data.draw(st.sampled_from([p for p in _paths(doc) if len(p) > 1]))
    mutated = _replace(doc, path, data.draw(json_values))
    try:
        hub_obj = registry.parse(mutated)
    except ValidationError:
        return
    once = registry.render(hub_obj, doc["apiVersion"])
    assert registry.render(registry.parse(once), doc["apiVersion"]) == once


def test_the_valid_seed_documents_parse() -> None:
    for doc in VALID:
        assert registry.parse(doc).kind == doc["kind"]
