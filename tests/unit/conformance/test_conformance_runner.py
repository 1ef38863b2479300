"""The runner: steps in order, skips with reasons (never passes), halting after a failed or
skipped apply/delete, target errors, and clean-up that always runs."""

from __future__ import annotations

from collections.abc import Callable

from conformance_fakes import FakeTarget

from conformance.model import Scenario
from conformance.runner import run, run_scenario

MakeScenario = Callable[..., Scenario]

TEXT = """
description: apply, then traffic flows; delete, then it stops
capability: traffic-access/revoke
smi_versions: [access.smi-spec.io/v1alpha3, specs.smi-spec.io/v1alpha4]
workloads:
  - identity: shop/frontend
  - {identity: shop/catalog, services: [catalog]}
resources:
  tt: {apiVersion: access.smi-spec.io/v1alpha3, kind: TrafficTarget}
steps:
  - request: {from: shop/frontend, to: catalog}
    expect: {status: 403}
  - apply: [tt]
  - request: {from: shop/frontend, to: catalog, count: 2}
    expect: {status: 200, allowed: 2, identity: shop/frontend}
  - admit: {resource: tt}
    expect: {allowed: false, message: SMI2104}
  - convert: {resource: tt, to: access.smi-spec.io/v1alpha2}
  - delete: [tt]
  - request: {from: shop/frontend, to: catalog}
    expect: {status: 403, denied: 1}
"""


def _statuses(target: FakeTarget, scenario: Scenario) -> list[str]:
    return [s.status for s in run_scenario(target, scenario).steps]


def test_every_step_passes_in_order(make_scenario: MakeScenario) -> None:
    s = make_scenario(TEXT)
    target = FakeTarget()
    result = run_scenario(target, s)
    assert result.status == "passed"
    assert [x.status for x in result.steps] == ["passed"] * 7
    assert target.calls == [
        f"begin {s.name}",
        "request",
        "apply",
        "request",
        "admit",
        "convert",
        "delete",
        "request",
        f"end {s.name}",
    ]


def test_a_refused_apply_halts_the_scenario(make_scenario: MakeScenario) -> None:
    result = run_scenario(FakeTarget(refuse_apply=True), make_scenario(TEXT))
    assert result.status == "failed"
    assert [x.status for x in result.steps] == ["passed", "failed"] + ["skipped"] * 5
    assert result.steps[2].reason == "not run: step 2 (apply) failed, the state is unknown"
    assert "refused: refused by the fake (SMI9999)" in result.failure_text()


def test_an_unsupported_step_is_skipped_with_its_reason_never_passed(
    make_scenario: MakeScenario,
) -> None:
    result = run_scenario(FakeTarget(unsupported_kinds=("convert",)), make_scenario(TEXT))
    assert result.status == "skipped"
    assert [x.status for x in result.steps] == ["passed"] * 4 + ["skipped"] + ["passed"] * 2
    assert result.skip_reasons == ["fake: convert steps are not supported"]


def test_an_unsupported_apply_skips_everything_after_it(make_scenario: MakeScenario) -> None:
    statuses = _statuses(FakeTarget(unsupported_kinds=("apply",)), make_scenario(TEXT))
    assert statuses == ["passed"] + ["skipped"] * 6


def test_a_failed_request_does_not_halt(make_scenario: MakeScenario) -> None:
    broken = TEXT.replace("expect: {status: 403}\n", "expect: {status: 200}\n", 1)
    result = run_scenario(FakeTarget(), make_scenario(broken))
    assert [x.status for x in result.steps] == ["failed"] + ["passed"] * 6
    assert result.status == "failed"


def test_a_target_error_is_an_error_and_cleans_up(make_scenario: MakeScenario) -> None:
    s = make_scenario(TEXT)
    target = FakeTarget(break_on="admit")
    result = run_scenario(target, s)
    assert result.status == "error"
    assert [x.status for x in result.steps] == ["passed"] * 3 + ["error"] + ["skipped"] * 3
    assert result.steps[3].reason == "the admit server went away"
    assert target.calls[-1] == f"end {s.name}"


def test_run_starts_and_stops_each_target_once(make_scenario: MakeScenario) -> None:
    a, b = FakeTarget(), FakeTarget()
    seen: list[str] = []
    result = run(
        [a, b],
        [make_scenario(TEXT, name="x/one"), make_scenario(TEXT, name="x/two")],
        progress=lambda r: seen.append(r.scenario),
    )
    assert a.calls[0] == "start" and a.calls[-1] == "stop"
    assert seen == ["x/one", "x/two", "x/one", "x/two"]
    assert result.ok and len(result.results) == 4
