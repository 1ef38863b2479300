"""What a scenario may claim: the SMI versions it is reported under are the ones its resources
and conversions exercise, decisions are ids of conformance/decisions.py, and a request goes to a
port a workload behind the service serves. Each mistake is a load error at its own line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.catalog import ScenarioError, discover, load_text
from conformance.model import Scenario

MakeScenario = Callable[..., Scenario]

# A split v1alpha4 scenario with access v1alpha3 and specs v1alpha4 objects; {versions} and
# {decisions} are what the file declares.
CANARY = """\
description: d
capability: c
smi_versions: {versions}
decisions: {decisions}
workloads:
  - identity: store/web
  - {{identity: store/api, name: api-v1, services: [api, api-v1], ports: [8080, 9090]}}
  - {{identity: store/api, name: api-v2, services: [api-v2], ports: [8080]}}
resources:
  routes: {{apiVersion: specs.smi-spec.io/v1alpha4, kind: HTTPRouteGroup}}
  tt: {{apiVersion: access.smi-spec.io/v1alpha3, kind: TrafficTarget}}
  split: {{apiVersion: split.smi-spec.io/v1alpha4, kind: TrafficSplit}}
steps:
  - apply: [routes, tt, split]
  - request: {{from: store/web, to: "{to}"}}
    expect: {{status: 200}}
"""


def _canary(
    versions: str = "[split.smi-spec.io/v1alpha4]",
    decisions: str = "[split-matches]",
    to: str = "api:8080",
) -> str:
    return CANARY.format(versions=versions, decisions=decisions, to=to)


def _load(text: str) -> Scenario:
    return load_text(text, name="audit/claim", filename="claim.yaml")


def _errors(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        _load(text)
    return info.value.lines


# --- SMI versions ------------------------------------------------------------------------------


def test_a_version_the_resources_contradict_is_a_load_error() -> None:
    # Reported as split v1alpha1 "full" before, although no split v1alpha1 object was ever sent.
    assert _errors(_canary(versions="\n  - split.smi-spec.io/v1alpha1")) == [
        "claim.yaml:4: smi_versions[0]: split.smi-spec.io/v1alpha1 is not what the scenario "
        "exercises: its split.smi-spec.io resources and conversions are "
        "split.smi-spec.io/v1alpha4"
    ]


def test_a_version_smictl_does_not_serve_is_a_load_error() -> None:
    # `--smi-version access.smi-spec.io/v1alpha9` is refused as unknown; so is the claim.
    lines = _errors(_canary(versions="[split.smi-spec.io/v1alpha4, access.smi-spec.io/v1alpha9]"))
    assert lines == [
        "claim.yaml:3: smi_versions[1]: 'access.smi-spec.io/v1alpha9' is not an SMI "
        "group/version smictl serves; access.smi-spec.io has v1alpha1, v1alpha2, v1alpha3, "
        "v1alpha4"
    ]


def test_versions_are_those_the_resources_exercise() -> None:
    # Declaring only the split version still reports the access and specs objects it sends.
    s = _load(_canary())
    assert s.smi_versions == (
        "access.smi-spec.io/v1alpha3",
        "specs.smi-spec.io/v1alpha4",
        "split.smi-spec.io/v1alpha4",
    )
    assert _load(_canary(versions="[]")).smi_versions == s.smi_versions


def test_conversions_count_within_the_resources_group_only(make_scenario: MakeScenario) -> None:
    s = make_scenario(
        """
        description: d
        capability: c
        resources:
          tt: {apiVersion: access.smi-spec.io/v1alpha3, kind: TrafficTarget}
          draft: {apiVersion: access.smi-spec.io/v1alpha7, kind: TrafficTarget}
          odd: {apiVersion: [access.smi-spec.io/v1alpha2], kind: TrafficTarget}
        steps:
          - convert: {resource: tt, to: access.smi-spec.io/v1alpha1}
          - convert: {resource: tt, to: split.smi-spec.io/v1alpha4}
            expect: {round_trip: false, error: belongs to}
          - admit: {resource: draft}
            expect: {allowed: false}
        """
    )
    # The wrong-group conversion, the unserved draft and a malformed apiVersion exercise
    # nothing.
    assert s.smi_versions == ("access.smi-spec.io/v1alpha1", "access.smi-spec.io/v1alpha3")


def test_a_scenario_without_served_objects_must_name_its_versions(
    make_scenario: MakeScenario,
) -> None:
    text = """
        description: d
        capability: c
        workloads: [{identity: shop/a}, {identity: shop/b, services: [b]}]
        steps:
          - request: {from: shop/a, to: b}
            expect: {denied: 1}
        """
    with pytest.raises(ScenarioError) as info:
        make_scenario(text)
    assert info.value.lines == [
        "access/example.yaml:2: smi_versions: the scenario holds no SMI object of a version "
        "smictl serves: name the group/versions it is about"
    ]


def test_selection_and_reports_use_the_exercised_versions(
    scenario_dir: Callable[[dict[str, str]], Path],
) -> None:
    root = scenario_dir(
        {
            "conversion/tt": """
                description: d
                capability: c
                smi_versions: [access.smi-spec.io/v1alpha3]
                resources:
                  tt: {apiVersion: access.smi-spec.io/v1alpha3, kind: TrafficTarget}
                steps:
                  - convert: {resource: tt, to: access.smi-spec.io/v1alpha1}
                """
        }
    )
    # It converts to access v1alpha1, so it is selected by that version...
    assert [s.name for s in discover(root=root, smi_version="access.smi-spec.io/v1alpha1")] == [
        "conversion/tt"
    ]
    # ...and no longer passes for a v0.6.0-only scenario.
    assert discover(root=root, smi_version="v0.6.0") == []


def test_shipped_conversion_scenarios_count_for_every_version_they_convert_to() -> None:
    s = next(
        x for x in discover(patterns=["conversion/*"]) if x.name.endswith("from-split-v1alpha1")
    )
    assert s.declared_versions == ("split.smi-spec.io/v1alpha1",)
    assert s.smi_versions == tuple(f"split.smi-spec.io/v1alpha{n}" for n in (1, 2, 3, 4))


# --- decisions ---------------------------------------------------------------------------------


def test_an_unknown_decision_is_a_load_error() -> None:
    lines = _errors(_canary(decisions="[split-matches, no-such-decision, split-matchez]"))
    assert lines == [
        "claim.yaml:4: decisions[1]: 'no-such-decision' is not a decision id of "
        "conformance/decisions.py (DESIGN.md §3)",
        "claim.yaml:4: decisions[2]: 'split-matchez' is not a decision id of "
        "conformance/decisions.py (DESIGN.md §3); did you mean 'split-matches'?",
    ]


# --- request ports -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "reason"),
    [
        ("api:99999", "port 99999 is not 1-65535"),
        ("api:0", "port 0 is not 1-65535"),
        ("api.store:8081", "no workload behind store/api serves port 8081 (ports: 8080, 9090)"),
        ("api-v2:9090", "no workload behind store/api-v2 serves port 9090 (ports: 8080)"),
    ],
)
def test_a_request_to_a_port_nobody_serves_is_a_load_error(to: str, reason: str) -> None:
    # Before, inproc and webhook decided it like any port; the proxy target had no listener.
    assert _errors(_canary(to=to)) == [f"claim.yaml:15: steps[1].request.to: {reason}"]


@pytest.mark.parametrize("to", ["api", "api:8080", "api:9090", "api.store:9090", "api-v2:8080"])
def test_a_request_to_a_served_port_loads(to: str) -> None:
    _load(_canary(to=to))


def test_the_line_is_the_requests_own_in_a_longer_file() -> None:
    text = _canary() + '  - request: {from: store/web, to: "api:7000"}\n    expect: {status: 200}\n'
    assert _errors(text) == [
        "claim.yaml:17: steps[2].request.to: no workload behind store/api serves port 7000 "
        "(ports: 8080, 9090)"
    ]
