"""A TCPRoute/UDPRoute v1alpha4 whose `spec` stops short of `matches.ports` allows every port,
as the SMI spec says of an omitted list (SPEC.md §3.2, DESIGN.md §3), with a warning that the
published CRD requires `spec.matches.ports` (SMI2303); no `spec` at all is what the CRD
accepts, and says nothing."""

from __future__ import annotations

import pytest
from validation_helpers import findings, run_checks

from smi.compiler.checks import validate
from smi.loading import load_text


def route(body: str, *, kind: str = "TCPRoute", version: str = "v1alpha4") -> str:
    head = f"apiVersion: specs.smi-spec.io/{version}\nkind: {kind}\nmetadata: {{name: r}}\n"
    return head + body


@pytest.mark.parametrize("kind", ["TCPRoute", "UDPRoute"])
@pytest.mark.parametrize(
    ("body", "path"),
    [
        ("spec: {}\n", "spec"),
        ("spec: {matches: {}}\n", "spec.matches"),
        ("spec: {matches: null}\n", "spec.matches"),
        ("spec:\n  matches:\n    ports:\n", "spec.matches.ports"),
    ],
)
def test_a_spec_without_ports_allows_every_port_and_warns(kind: str, body: str, path: str) -> None:
    loaded = load_text(route(body, kind=kind), filename="t.yaml")
    assert loaded.diagnostics == []
    assert loaded.resources[0].obj.ports == ()  # every port, as `ports: []`
    [d] = validate(loaded.resources, loaded.context)
    assert (d.code, d.path, d.severity) == ("SMI2303", path, "warning")
    assert d.message == (
        "no ports: every port is allowed, but the SMI CRD requires spec.matches.ports and "
        "the API server refuses this; write ports: []"
    )


@pytest.mark.parametrize(
    "text",
    [
        route(""),  # no spec: the CRD requires nothing at the root
        route("spec: null\n"),
        route("spec: {matches: {ports: []}}\n"),
        route("spec: {matches: {ports: [80]}}\n", kind="UDPRoute"),
        route("spec: {}\n", version="v1alpha3"),  # v1alpha3's spec is empty by definition
    ],
)
def test_what_the_crd_accepts_gets_no_warning(text: str) -> None:
    assert run_checks(text) == []


def test_other_shapes_are_still_refused() -> None:
    assert findings(run_checks(route("spec: {matches: {ports: 80}}\n"))) == [
        ("SMI2003", "spec.matches.ports")
    ]
    assert findings(run_checks(route("spec: {matches: []}\n"))) == [("SMI2003", "spec.matches")]
    assert findings(run_checks(route("spec: {matches: {port: [80]}}\n"))) == [
        ("SMI2001", "spec.matches.port")
    ]
