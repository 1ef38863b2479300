"""Property: whatever text or data arrives, the loader and the validation path never raise.
Every problem is a Diagnostic with a known code, and located where a line exists.

Three generators, 700 cases each: raw text from YAML's significant characters,
random JSON-like documents (as YAML and as JSON) shaped like SMI objects, and real example
manifests with a random field replaced by a random value. `SMICTL_FUZZ_EXAMPLES=5000` runs
longer campaigns (15,000 cases found nothing when this was written).

And: plain block YAML read by the fast path (`smi.yamlblock`, lines computed on demand) loads
and validates exactly as the full parser's output does: same resources, same diagnostics with
the same lines, same `line_of` for every field.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smi.codes import CODES
from smi.compiler import validate
from smi.errors import Diagnostic
from smi.loading import LoadResult, load_object, load_text
from smi.yamlpos import format_path

SETTINGS = settings(
    max_examples=int(os.environ.get("SMICTL_FUZZ_EXAMPLES", "700")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

API_VERSIONS = [
    f"{g}.smi-spec.io/v1alpha{v}"
    for g in ("access", "specs", "split", "metrics")
    for v in range(1, 6)
] + ["v1", "apps/v1", "v1alpha1", ""]
KINDS = [
    "TrafficTarget",
    "IdentityBinding",
    "HTTPRouteGroup",
    "TCPRoute",
    "UDPRoute",
    "TrafficSplit",
    "TrafficMetrics",
    "TrafficMetricsList",
    "Service",
    "List",
    "Pod",
]
KEYS = [
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "spec",
    "matches",
    "ports",
    "rules",
    "specs",
    "sources",
    "destination",
    "backends",
    "service",
    "weight",
    "headers",
    "pathRegex",
    "methods",
    "items",
    "annotations",
    "schemes",
    "port",
    "x",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from(API_VERSIONS + KINDS + KEYS),
    st.text(max_size=12),
    st.sampled_from(["500m", "1", "-1", "(a)\\1", "/api$", "GET", "*"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=25,
)
documents = st.fixed_dictionaries(
    {"apiVersion": st.sampled_from(API_VERSIONS), "kind": st.sampled_from(KINDS)},
    optional={
        "metadata": values | st.just({"name": "x"}),
        "spec": values,
        "matches": values,
        "items": st.lists(values, max_size=3),
        "destination": values,
    },
)
YAML_TEXT = st.text(
    alphabet=st.sampled_from([*"abk:-[]{}#&*!|>'\"%@`,?\n \t019.~<=\\", "\u00e9", "\x00"]),
    max_size=120,
)


def assert_well_behaved(result: LoadResult) -> None:
    """The loader returned (it did not raise), and so does the validation path over its
    output; every diagnostic has a known code and a sane location."""
    diagnostics: list[Diagnostic] = result.diagnostics + validate(result.resources, result.context)
    for d in diagnostics:
        assert d.code in CODES, d
        assert d.severity in ("error", "warning")
        assert d.line is None or d.line >= 1
        assert "\n" not in d.format()
    if not result.ok:
        assert any(d.is_error for d in result.diagnostics)


@SETTINGS
@given(YAML_TEXT)
def test_random_text_never_raises(text: str) -> None:
    assert_well_behaved(load_text(text, filename="fuzz.yaml"))
    assert_well_behaved(load_text(text, filename="fuzz.json"))


@SETTINGS
@given(documents, st.booleans())
def test_random_documents_never_raise(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        text = json.dumps(doc)
        assert_well_behaved(load_text(text, filename="fuzz.json"))
    else:
        text = yaml.safe_dump_all([doc, doc.get("metadata")])
        assert_well_behaved(load_text(text, filename="fuzz.yaml"))
    assert_well_behaved(load_object(doc))


def example_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        try:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict))
        except yaml.YAMLError:
            continue  # the deliberately broken syntax example
    return docs


EXAMPLE_DOCS = example_documents()


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out.extend(paths_of(child, (*prefix, key)))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out.extend(paths_of(child, (*prefix, i)))
    return out


def mutated_example(data: st.DataObject) -> dict[str, Any]:
    """A shipped example with one field replaced by a random value, or removed."""
    doc = copy.deepcopy(data.draw(st.sampled_from(EXAMPLE_DOCS)))
    path = data.draw(st.sampled_from(paths_of(doc)[1:]))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if data.draw(st.booleans()):
        parent[path[-1]] = data.draw(values)
    elif isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    return doc


@SETTINGS
@given(st.data())
def test_mutated_examples_never_raise(data: st.DataObject) -> None:
    doc = mutated_example(data)
    assert_well_behaved(load_text(yaml.safe_dump(doc), filename="mutated.yaml"))


def observed(result: LoadResult) -> tuple[Any, ...]:
    """Everything a user or a caller can see of a load and its validation."""
    diagnostics = result.diagnostics + validate(result.resources, result.context)
    return (
        [
            (d.code, d.path, d.file, d.line, d.message, d.severity, d.object_ref)
            for d in diagnostics
        ],
        [
            (
                r.key,
                r.api_version,
                r.source,
                r.raw,
                r.obj,
                *(r.line_of(format_path(p)) for p in paths_of(dict(r.raw))),
            )
            for r in result.resources
        ],
        [(c.key, c.api_version, c.source, c.raw) for c in result.context],
        result.files,
    )


@SETTINGS
@given(
    st.data(),
    st.sampled_from([{}, {"indent": 4}, {"explicit_start": True}, {"default_flow_style": None}]),
)
def test_the_fast_path_loads_what_the_full_parser_loads(
    data: st.DataObject, style: dict[str, Any]
) -> None:
    docs = [
        mutated_example(data)
        if data.draw(st.booleans())
        else data.draw(st.sampled_from(EXAMPLE_DOCS))
        for _ in range(data.draw(st.integers(1, 4)))
    ]
    text = yaml.safe_dump_all(docs, sort_keys=False, **style)
    fast = load_text(text, filename="set.yaml")
    with mock.patch("smi.loading.parse_block", return_value=None):
        full = load_text(text, filename="set.yaml")
    assert observed(fast) == observed(full)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(s for v in value.values() for s in _strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _read_as_go_yaml_reads(text: str) -> bool:
    from smi.yamlbuild import plain

    if not text or isinstance(plain(text), str):
        return False
    try:
        return isinstance(yaml.safe_load(text), str)
    except yaml.YAMLError:
        return False


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_the_event_builder_reads_what_pyyaml_writes(value: Any) -> None:
    from smi.yamlpos import load_documents

    # Strings the two resolvers read apart on purpose: `1e3`, `0E0` are floats to kubectl's
    # go-yaml (and so to smictl) and text to PyYAML, which therefore writes them plain.
    assume(not any(_read_as_go_yaml_reads(s) for s in _strings(value)))
    text = yaml.safe_dump({"doc": value}, allow_unicode=True)
    [doc] = load_documents(text)
    # Same libyaml parser, PyYAML's own constructor: the builder must agree with it.
    assert doc.value == yaml.load(text, Loader=yaml.CSafeLoader)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1) | st.integers(min_value=0, max_value=10**6), max_size=6))
def test_paths_format_and_parse_back(parts: list[str | int]) -> None:
    from smi.yamlpos import format_path, parse_path

    if parts and isinstance(parts[0], int):
        parts = ["root", *parts]
    assert parse_path(format_path(parts)) == tuple(parts)
