"""The scenario format: what it accepts, and how it reports a broken file (file:line: path)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance.catalog import ScenarioError
from conformance.model import (
    AdmitStep,
    ApplyStep,
    RequestStep,
    Scenario,
    split_service,
    step_kind,
    step_title,
)

MakeScenario = Callable[..., Scenario]

HEAD = """
description: d
capability: c
smi_versions: [split.smi-spec.io/v1alpha4]
workloads:
  - identity: shop/frontend
  - {identity: shop/catalog, name: catalog-v1, services: [catalog, catalog-v1], ports: [8080]}
  - {identity: shop/catalog, name: catalog-v2, services: [catalog-v2], ports: [8080]}
resources:
  split: {apiVersion: split.smi-spec.io/v1alpha4, kind: TrafficSplit}
"""


def _errors(make: MakeScenario, text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        make(text)
    return info.value.lines


def test_minimal_scenario_reads_with_defaults(make_scenario: MakeScenario) -> None:
    s = make_scenario()
    step = s.steps[0]
    assert isinstance(step, RequestStep)
    assert (step.request.method, step.request.path, step.request.port) == ("GET", "/", None)
    assert s.mode == "deny" and s.area == "access"
    assert s.backing("shop", "catalog")[0].identity == "shop/catalog"
    assert step_title(step) == "2x GET / shop/frontend -> catalog"


def test_every_step_kind_is_recognised(make_scenario: MakeScenario) -> None:
    s = make_scenario(
        HEAD
        + """
steps:
  - apply: [split]
  - admit: {resource: split, operation: UPDATE, old: split}
    expect: {allowed: false, message: SMI3003}
  - convert: {resource: split, to: split.smi-spec.io/v1alpha2}
  - delete: [split]
    expect: {allowed: false, message: not found}
  - request: {from: shop/frontend, to: "catalog.shop:8080", count: 10}
    expect:
      backends: {share: {catalog-v1: 0.75, catalog-v2: 0.25}, tolerance: 0.05}
"""
    )
    assert [step_kind(x) for x in s.steps] == ["apply", "admit", "convert", "delete", "request"]
    assert isinstance(s.steps[0], ApplyStep) and s.steps[0].expect.allowed
    assert isinstance(s.steps[1], AdmitStep) and s.steps[1].admit.old == "split"
    req = s.steps[4]
    assert isinstance(req, RequestStep) and req.request.port == 8080


def test_unknown_field_is_reported_with_line_and_path(make_scenario: MakeScenario) -> None:
    lines = _errors(
        make_scenario,
        """
description: d
capability: c
smi_versions: [access.smi-spec.io/v1alpha3]
workloads: [{identity: shop/frontend}, {identity: shop/catalog, services: [catalog]}]
steps:
  - request: {from: shop/frontend, to: catalog}
    expect:
      status: 403
      denyed: 1
""",
    )
    assert lines == [
        "access/example.yaml:10: steps[0].expect.denyed: Extra inputs are not permitted"
    ]


def test_a_step_with_two_kinds_or_none_is_refused(make_scenario: MakeScenario) -> None:
    lines = _errors(
        make_scenario,
        HEAD
        + """
steps:
  - {apply: [split], delete: [split]}
  - {wait: 3}
""",
    )
    assert len(lines) == 2
    assert all(
        "a step has exactly one of: apply, delete, admit, request, convert" in x for x in lines
    )
    assert lines[0].startswith("access/example.yaml:13: steps[0]")


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("- apply: [nope]", "steps[0]: resource 'nope' is not in `resources`"),
        (
            "- request: {from: shop/ghost, to: catalog}\n    expect: {status: 200}",
            "'shop/ghost' is not a workload identity",
        ),
        (
            "- request: {from: shop/frontend, to: payments}\n    expect: {status: 200}",
            "no workload backs the service shop/payments",
        ),
        (
            "- request: {from: shop/frontend, to: catalog, count: 3}\n    expect: {allowed: 4}",
            "expect.allowed (4) exceeds request.count",
        ),
        (
            "- request: {from: shop/frontend, to: catalog}\n"
            "    expect: {backends: {counts: {catalog-v9: 1}}}",
            "unknown workloads catalog-v9",
        ),
        (
            "- request: {from: shop/frontend, to: catalog}\n    expect: {}",
            "a request step must expect something",
        ),
        (
            "- request: {from: shop/frontend, to: catalog}\n"
            "    expect: {backends: {share: {catalog-v1: 0.5}}}",
            "shares must sum to 1, not 0.5",
        ),
        (
            "- request: {from: shop/frontend, to: catalog}\n"
            "    expect: {backends: {share: {catalog-v1: 1}, counts: {catalog-v1: 1}}}",
            "give exactly one of `share` or `counts`",
        ),
        (
            "- admit: {resource: split}\n    expect: {allowed: false, message: '(unclosed'}",
            "not a regular expression",
        ),
        (
            "- request: {from: shop/frontend, to: 'catalog:http'}\n    expect: {status: 200}",
            "is not `service[:port]`",
        ),
        (
            "- request: {from: shop/frontend, to: catalog, path: x}\n    expect: {status: 200}",
            "a path starts with '/'",
        ),
    ],
)
def test_inconsistent_scenarios_are_refused(
    make_scenario: MakeScenario, steps: str, message: str
) -> None:
    text = HEAD + "steps:\n  " + steps + "\n"
    lines = _errors(make_scenario, text)
    assert any(message in line for line in lines), lines


def test_workload_names_must_be_unique(make_scenario: MakeScenario) -> None:
    lines = _errors(
        make_scenario,
        """
description: d
capability: c
smi_versions: [access.smi-spec.io/v1alpha3]
workloads: [{identity: shop/a}, {identity: other/a}]
steps: [{apply: [x]}]
resources: {x: {}}
""",
    )
    assert any("names must be unique, repeated: a" in x for x in lines)


def test_name_comes_from_the_path(make_scenario: MakeScenario, scenario_text: str) -> None:
    lines = _errors(make_scenario, "name: other\n" + scenario_text)
    assert lines == ["access/example.yaml:1: name: must be 'access/example' (its path)"]


def test_yaml_syntax_error_has_a_line(make_scenario: MakeScenario) -> None:
    lines = _errors(make_scenario, "description: d\nsteps: [\n")
    assert lines[0].startswith("access/example.yaml:2: YAML syntax error")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("catalog", ("shop", "catalog")),
        ("catalog.ops", ("ops", "catalog")),
        ("catalog.ops.svc.cluster.local", ("ops", "catalog")),
    ],
)
def test_split_service(ref: str, expected: tuple[str, str]) -> None:
    assert split_service(ref, default_namespace="shop") == expected
