"""The whole shipped suite on the in-process target, and proof that it can fail: a mesh that
allows everything, or that ignores split weights, is caught by the scenarios."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.assertions import RequestObservation, Response
from conformance.catalog import discover
from conformance.model import RequestSpec, Scenario
from conformance.reports import write_reports
from conformance.runner import run
from conformance.targets.inproc import InprocTarget

MakeScenario = Callable[..., Scenario]


@pytest.fixture(scope="module")
def suite() -> list[Scenario]:
    return discover()


def test_every_scenario_passes_in_process(suite: list[Scenario]) -> None:
    result = run([InprocTarget()], suite)
    failed = [r.failure_text() for r in result.results if r.status != "passed"]
    assert failed == []
    assert result.ok and len(result.results) == len(suite)
    assert {row.capability for row in result.summary()} == {"full"}


class AllowEverything(InprocTarget):
    """A broken mesh: every request reaches its destination."""

    name = "allow-all"

    def request(self, scenario: Scenario, spec: RequestSpec) -> RequestObservation:
        obs = super().request(scenario, spec)
        return RequestObservation(
            tuple(
                Response(
                    allowed=True,
                    status=200 if r.status else None,
                    backend=r.backend or "x",
                    identity=spec.source,
                )
                for r in obs.responses
            ),
            obs.would_deny,
        )


class NoSplit(InprocTarget):
    """A broken mesh: TrafficSplits are ignored, every request goes to the root service."""

    name = "no-split"

    def _recompile(self, scenario: Scenario) -> None:
        super()._recompile(scenario)
        assert self._index is not None
        self._index.splits.clear()


def test_a_mesh_that_allows_everything_fails_the_access_scenarios(suite: list[Scenario]) -> None:
    access = [s for s in suite if s.area == "access"]
    result = run([AllowEverything()], access)
    failed = {r.scenario.split(".")[0] for r in result.results if r.status == "failed"}
    assert {
        "access/default-deny",
        "access/ports",
        "access/path-matching",
        "access/cross-namespace-sources",
        "access/delete-revokes",
    } <= failed
    assert not result.ok


def test_a_mesh_without_splits_fails_the_split_scenarios(suite: list[Scenario]) -> None:
    splits = [s for s in suite if s.area == "split" and "grants-no-access" not in s.name]
    result = run([NoSplit()], splits)
    assert all(r.status == "failed" for r in result.results)
    weights = next(r for r in result.results if r.scenario == "split/weights.split-v1alpha4")
    bad = [c for s in weights.steps for c in s.failures]
    assert any(
        c.what == "backend catalog-v2 count" and c.expected == "40" and c.got == "0" for c in bad
    )


BROKEN = """
description: a deliberately wrong expectation - the intruder has no TrafficTarget
capability: traffic-access/allow
smi_versions: [access.smi-spec.io/v1alpha3, specs.smi-spec.io/v1alpha4]
workloads:
  - identity: shop/intruder
  - {identity: shop/catalog, services: [catalog], ports: [8080]}
resources:
  routes:
    apiVersion: specs.smi-spec.io/v1alpha4
    kind: HTTPRouteGroup
    metadata: {name: routes, namespace: shop}
    spec: {matches: [{name: all, pathRegex: ".*", methods: ["*"]}]}
steps:
  - apply: [routes]
  - request: {from: shop/intruder, to: "catalog:8080", path: /orders, count: 3}
    expect: {status: 200, allowed: 3, identity: shop/intruder}
"""


def test_a_broken_scenario_gives_a_readable_failure_report(
    make_scenario: MakeScenario, tmp_path: Path
) -> None:
    result = run([InprocTarget()], [make_scenario(BROKEN, name="access/broken")])
    r = result.results[0]
    assert r.status == "failed"
    assert r.failure_text().splitlines() == [
        "inproc access/broken: failed",
        "  step 2 (request) 3x GET /orders shop/intruder -> catalog:8080: failed",
        "    status: expected 200 for every request, got 403 x3",
        "    allowed: expected 3, got 0",
        "    identity seen by the destination: expected shop/intruder, got nothing",
    ]
    paths = write_reports(result, tmp_path)
    md = paths["markdown"].read_text()
    assert "  - status: expected `200 for every request`, got `403 x3`" in md
    assert "got <code>403 x3</code>" in paths["html"].read_text()
    assert 'failures="1"' in paths["junit"].read_text()
