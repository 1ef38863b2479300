"""The SMI CRDs in charts/smictl/crds: valid structural apiextensions.k8s.io/v1 documents, every
released version served and converted by the control plane, schemas equal to our wire models,
and accepting (or rejecting) the SMI example manifests the way the API server would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from chart_support import (
    CHARTS,
    CRD_DIR,
    SHARED_EXAMPLES,
    Example,
    client_problem,
    load_crds,
    load_module,
    served_schemas,
    smi_examples,
    strict_schema,
    structural_problems,
)

# What the chart serves (DESIGN.md "Versions"): every released version, one storage version.
EXPECTED_VERSIONS = {
    "traffictargets.access.smi-spec.io": (["v1alpha1", "v1alpha2", "v1alpha3"], "v1alpha3"),
    "httproutegroups.specs.smi-spec.io": (
        ["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"],
        "v1alpha4",
    ),
    "tcproutes.specs.smi-spec.io": (["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"], "v1alpha4"),
    "udproutes.specs.smi-spec.io": (["v1alpha4"], "v1alpha4"),
    "trafficsplits.split.smi-spec.io": (
        ["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"],
        "v1alpha4",
    ),
}

# Example manifests of a served version that the API server must refuse, with the reason.
EXPECTED_REJECTED = {
    # The doc writes this HTTPRouteGroup flat (top-level `matches`) while declaring specs
    # v1alpha3/v1alpha4: strict field validation refuses the unknown root field (and `spec`,
    # which those versions require, is missing).
    "split-v1alpha3/03-httproutegroup-ab-test--firefox-users.yaml": "'spec' is a required property",
    "split-v1alpha4/03-httproutegroup-ab-test--firefox-users.yaml": "'spec' is a required property",
    # The split v1alpha5 draft shows its HTTPRouteGroup flat too, "compatible with" specs
    # v1alpha4: the same refusal.
    "split-v1alpha5-draft/03-httproutegroup-ab-test--firefox-users.yaml": (
        "Additional properties are not allowed ('matches' was unexpected)"
    ),
}

CRDS = load_crds()
SCHEMAS = served_schemas()


def _versions(crd: dict[str, Any]) -> list[dict[str, Any]]:
    return list(crd["spec"]["versions"])


@pytest.mark.parametrize("name", sorted(EXPECTED_VERSIONS))
def test_crd_serves_every_released_version_with_one_storage_version(name: str) -> None:
    versions, storage = EXPECTED_VERSIONS[name]
    crd = CRDS[name]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert [v["name"] for v in _versions(crd)] == versions
    assert all(v["served"] for v in _versions(crd)), "every version must be served"
    assert [v["name"] for v in _versions(crd) if v["storage"]] == [storage]


def test_crd_files_are_exactly_the_five_smi_kinds() -> None:
    assert sorted(p.name for p in CRD_DIR.glob("*.yaml")) == sorted(
        f"{n}.yaml" for n in EXPECTED_VERSIONS
    )


@pytest.mark.parametrize("name", sorted(EXPECTED_VERSIONS))
def test_crd_names_agree(name: str) -> None:
    spec = CRDS[name]["spec"]
    assert name == f"{spec['names']['plural']}.{spec['group']}"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["listKind"] == spec["names"]["kind"] + "List"


@pytest.mark.parametrize("name", sorted(n for n, (v, _) in EXPECTED_VERSIONS.items() if len(v) > 1))
def test_multi_version_crds_convert_through_the_control_plane(name: str) -> None:
    conversion = CRDS[name]["spec"]["conversion"]
    assert conversion["strategy"] == "Webhook"
    webhook = conversion["webhook"]
    assert webhook["conversionReviewVersions"] == ["v1"]
    service = webhook["clientConfig"]["service"]
    assert service["path"] == "/convert"
    assert service["port"] == 443
    # The placeholder is the Service of `helm install smictl charts/smictl -n smictl-system`;
    # cainjector reads the Certificate next to it. The certs Job re-points both otherwise.
    assert (service["namespace"], service["name"]) == ("smictl-system", "smictl")
    annotation = CRDS[name]["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == "smictl-system/smictl-webhook"


def test_single_version_udproute_needs_no_conversion_webhook() -> None:
    # With one version there is nothing to convert; a webhook would only be a dependency.
    assert CRDS["udproutes.specs.smi-spec.io"]["spec"]["conversion"] == {"strategy": "None"}


@pytest.mark.parametrize("name", sorted(EXPECTED_VERSIONS))
def test_crd_is_a_valid_kubernetes_object(name: str) -> None:
    # Every key must be known to the CustomResourceDefinition model under its real name.
    doc = CRDS[name]
    assert client_problem(doc) is None


@pytest.mark.parametrize(
    ("name", "version"),
    [(n, v["name"]) for n in sorted(CRDS) for v in _versions(CRDS[n])],
)
def test_schema_is_structural(name: str, version: str) -> None:
    schema = next(v for v in _versions(CRDS[name]) if v["name"] == version)
    assert structural_problems(schema["schema"]["openAPIV3Schema"]) == []


@pytest.mark.parametrize(
    ("name", "version"),
    [(n, v["name"]) for n in sorted(CRDS) for v in _versions(CRDS[n])],
)
def test_printer_columns_point_at_schema_fields(name: str, version: str) -> None:
    entry = next(v for v in _versions(CRDS[name]) if v["name"] == version)
    root = entry["schema"]["openAPIV3Schema"]
    for column in entry.get("additionalPrinterColumns", []):
        node = root
        for part in column["jsonPath"].strip(".").split("."):
            assert part in node.get("properties", {}), f"{column['jsonPath']} is not in the schema"
            node = node["properties"][part]
        assert node["type"] == column["type"]


def test_structural_checker_finds_what_the_api_server_refuses() -> None:
    bad = {
        "type": "object",
        "properties": {
            "untyped": {"description": "no type"},
            "both": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            },
            "list": {"type": "array"},
            "choice": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "required": ["missing"],
    }
    problems = "\n".join(structural_problems(bad))
    for expected in (
        "<root>.untyped: no type",
        "<root>.both: properties and additionalProperties together",
        "<root>.list: array without one items schema",
        "<root>.choice: type inside anyOf",
        "required 'missing' is not a property",
    ):
        assert expected in problems


def test_committed_crds_are_what_the_generator_writes() -> None:
    gen = load_module(CHARTS / "tools" / "gen_crds.py", "gen_crds")
    expected = gen.expected_files()
    for name, text in expected.items():
        assert (CRD_DIR / name).read_text(encoding="utf-8") == text, (
            f"{name} differs from charts/tools/gen_crds.py: run it"
        )


# --- the schemas against our wire models ------------------------------------------------------


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[1]]
    branches = [b for b in node.get("anyOf", []) if b.get("type") != "null"]
    return _resolve(branches[0], defs) if len(branches) == 1 else node


def _compare(
    crd: dict[str, Any], model: dict[str, Any], defs: dict[str, Any], path: str
) -> list[str]:
    """Differences in properties, required fields and types, walking both schemas together."""
    model = _resolve(model, defs)
    if crd.get("x-kubernetes-preserve-unknown-fields") or crd.get("x-kubernetes-int-or-string"):
        return []  # headers (either wire form) and v1alpha1 quantities: checked by the webhook
    if model.get("type") not in (None, crd.get("type")):
        return [f"{path}: CRD type {crd.get('type')}, model type {model.get('type')}"]
    problems = []
    if crd.get("type") == "object":
        top = {"apiVersion", "kind", "metadata"} if path == "" else set()
        ours, theirs = set(crd.get("properties", {})), set(model.get("properties", {})) - top
        if ours != theirs:
            problems.append(f"{path or '<root>'}: CRD {sorted(ours)}, model {sorted(theirs)}")
        req_crd, req_model = set(crd.get("required", [])), set(model.get("required", [])) - top
        if req_crd != req_model:
            problems.append(
                f"{path or '<root>'}: required {sorted(req_crd)} vs {sorted(req_model)}"
            )
        for key in sorted(ours & theirs):
            problems += _compare(
                crd["properties"][key], model["properties"][key], defs, f"{path}.{key}"
            )
    elif crd.get("type") == "array":
        problems += _compare(crd["items"], model.get("items", {}), defs, f"{path}[]")
    return problems


def _released_models() -> list[Any]:
    registry = pytest.importorskip("smi.apis.registry")
    return [s for s in registry.served() if not s.draft and s.group != "metrics.smi-spec.io"]


def test_every_released_model_has_a_served_crd_version_and_nothing_else() -> None:
    models = {(s.api_version, s.kind) for s in _released_models()}
    assert set(SCHEMAS) == models


@pytest.mark.parametrize("key", sorted(SCHEMAS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_crd_schema_matches_the_wire_model(key: tuple[str, str]) -> None:
    served = {(s.api_version, s.kind): s for s in _released_models()}
    schema = served[key].wire.model_json_schema(by_alias=True)
    assert _compare(SCHEMAS[key], schema, schema.get("$defs", {}), "") == []


# --- example manifests ------------------------------------------------------------------------


def _examples(root: Path) -> list[Example]:
    return list(smi_examples(root))


def _validate(example_doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(strict_schema(schema))
    return [
        f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(example_doc)
    ]


def test_examples_cover_every_served_version(smi_examples: Path) -> None:
    # So that the per-file test below exercises every served schema at least once.
    seen = {(e.api_version, e.kind) for e in _examples(smi_examples)}
    assert set(SCHEMAS) - seen == set()


def _served_example_files() -> list[str]:
    root = SHARED_EXAMPLES
    if not root.is_dir():
        return ["<examples missing>"]
    return sorted({e.rel for e in smi_examples(root) if (e.api_version, e.kind) in SCHEMAS})


def test_most_examples_are_of_served_versions() -> None:
    assert len(_served_example_files()) > 60


@pytest.mark.parametrize("rel", _served_example_files())
def test_example_is_admitted_or_refused_as_expected(smi_examples: Path, rel: str) -> None:
    docs = [e for e in _examples(smi_examples) if e.rel == rel]
    errors = [err for e in docs for err in _validate(e.doc, SCHEMAS[(e.api_version, e.kind)])]
    if rel in EXPECTED_REJECTED:
        assert any(EXPECTED_REJECTED[rel] in e for e in errors), errors
    else:
        assert errors == []


def test_draft_examples_have_no_served_version(smi_examples: Path) -> None:
    drafts = [e for e in _examples(smi_examples) if (e.api_version, e.kind) not in SCHEMAS]
    assert drafts, "the examples include the unreleased drafts"
    for example in drafts:
        version = example.api_version.partition("/")[2]
        # Only the unreleased drafts (access v1alpha4, *-v1alpha5-draft) go unserved.
        assert version.endswith("-draft") or example.api_version == "access.smi-spec.io/v1alpha4", (
            example.rel
        )


def test_doc_typo_apiversion_without_group_is_read_as_intended(smi_examples: Path) -> None:
    typo = [
        e
        for e in _examples(smi_examples)
        if e.rel.endswith("02-httproutegroup-the-routes--everything.yaml")
        and e.rel.startswith("specs-v1alpha1/")
    ]
    assert [e.api_version for e in typo] == ["specs.smi-spec.io/v1alpha1"]
    assert _validate(typo[0].doc, SCHEMAS[(typo[0].api_version, "HTTPRouteGroup")]) == []


# --- hand-made objects: what the CRDs refuse and what they must accept ------------------------


def _doc(api_version: str, kind: str, body: str) -> dict[str, Any]:
    doc = yaml.safe_load(body) or {}
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, **doc}


CASES = [
    # (apiVersion, kind, body, error substring or None when admitted)
    (
        "specs.smi-spec.io/v1alpha4",
        "HTTPRouteGroup",
        "spec: {matches: [{name: a, headers: {user-agent: '.*Firefox.*'}}]}",
        None,
    ),
    (
        "specs.smi-spec.io/v1alpha4",
        "HTTPRouteGroup",
        "spec: {matches: [{name: a, headers: [{user-agent: '.*Firefox.*'}]}]}",
        None,
    ),
    (
        "specs.smi-spec.io/v1alpha1",
        "HTTPRouteGroup",
        "matches: [{name: a, headers: {user-agent: x}}]",
        "Additional properties are not allowed",
    ),
    (
        "specs.smi-spec.io/v1alpha4",
        "HTTPRouteGroup",
        "spec: {matches: [{name: a, methods: [get]}]}",
        "is not one of",
    ),
    (
        "specs.smi-spec.io/v1alpha4",
        "HTTPRouteGroup",
        "spec: {matches: [{pathRegex: /a}]}",
        "'name' is a required property",
    ),
    (
        "specs.smi-spec.io/v1alpha3",
        "TCPRoute",
        "spec: {matches: {ports: [80]}}",
        "Additional properties are not allowed",
    ),
    ("specs.smi-spec.io/v1alpha2", "TCPRoute", "spec: {}", "Additional properties are not allowed"),
    ("specs.smi-spec.io/v1alpha4", "TCPRoute", "{}", None),
    ("specs.smi-spec.io/v1alpha4", "TCPRoute", "spec: {}", "'matches' is a required property"),
    (
        "specs.smi-spec.io/v1alpha4",
        "UDPRoute",
        "spec: {matches: {ports: [0]}}",
        "less than the minimum",
    ),
    (
        "specs.smi-spec.io/v1alpha4",
        "UDPRoute",
        "spec: {matches: {ports: [70000]}}",
        "greater than the maximum",
    ),
    (
        "specs.smi-spec.io/v1alpha4",
        "TCPRoute",
        "spec: {matches: {ports: ['80']}}",
        "is not of type 'integer'",
    ),
    (
        "access.smi-spec.io/v1alpha3",
        "TrafficTarget",
        "spec: {destination: {kind: ServiceAccount, name: a, port: 80}, rules: [], sources: []}",
        "Additional properties are not allowed ('port'",
    ),
    (
        "access.smi-spec.io/v1alpha3",
        "TrafficTarget",
        "spec: {destination: {kind: ServiceAccount, name: a}, rules: []}",
        "'sources' is a required property",
    ),
    (
        "access.smi-spec.io/v1alpha2",
        "TrafficTarget",
        "spec: {destination: {kind: ServiceAccount, name: a, port: 8080}}",
        None,
    ),
    (
        "access.smi-spec.io/v1alpha2",
        "TrafficTarget",
        "spec: {destination: {kind: ServiceAccount, name: a}, rules: [{kind: UDPRoute, name: u}]}",
        "is not one of",
    ),
    (
        "access.smi-spec.io/v1alpha1",
        "TrafficTarget",
        "destination: {kind: ServiceAccount, name: a}",
        None,
    ),
    (
        "access.smi-spec.io/v1alpha1",
        "TrafficTarget",
        "destination: {kind: ServiceAccount, name: a}\nrules: []",
        "Additional properties are not allowed",
    ),
    (
        "split.smi-spec.io/v1alpha1",
        "TrafficSplit",
        "spec: {service: s, backends: [{service: a, weight: 500m}, {service: b, weight: 1}]}",
        None,
    ),
    (
        "split.smi-spec.io/v1alpha1",
        "TrafficSplit",
        "spec: {service: s, backends: [{service: a, weight: lots}]}",
        "does not match",
    ),
    (
        "split.smi-spec.io/v1alpha1",
        "TrafficSplit",
        "spec: {service: s, backends: [{service: a, weight: -1}]}",
        "less than the minimum",
    ),
    (
        "split.smi-spec.io/v1alpha2",
        "TrafficSplit",
        "spec: {service: s, backends: [{service: a, weight: '50'}]}",
        "is not of type 'integer'",
    ),
    (
        "split.smi-spec.io/v1alpha2",
        "TrafficSplit",
        "spec: {service: s, backends: [{service: a, weight: 1}], matches: []}",
        "Additional properties",
    ),
    (
        "split.smi-spec.io/v1alpha4",
        "TrafficSplit",
        "spec: {service: s, backends: [{service: a, weight: 1}],"
        " matches: [{kind: HTTPRouteGroup, name: g, apiGroup: specs.smi-spec.io}]}",
        None,
    ),
    (
        "split.smi-spec.io/v1alpha4",
        "TrafficSplit",
        "metadata: {name: x}",
        "'spec' is a required property",
    ),
]


@pytest.mark.parametrize(("api_version", "kind", "body", "error"), CASES)
def test_crd_admits_or_refuses_hand_made_objects(
    api_version: str, kind: str, body: str, error: str | None
) -> None:
    errors = _validate(_doc(api_version, kind, body), SCHEMAS[(api_version, kind)])
    if error is None:
        assert errors == []
    else:
        assert any(error in e for e in errors), errors
