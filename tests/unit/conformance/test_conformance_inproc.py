"""The whole shipped suite on the in-process target, and proof that it can fail: a mesh that
allows everything, or that ignores split weights, is caught by the scenarios."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from random import Random
from typing import Any

import pytest

from conformance.assertions import RequestObservation, Response
from conformance.catalog import discover
from conformance.model import RequestSpec, RequestStep, Scenario, Workload
from conformance.reports import write_reports
from conformance.runner import run
from conformance.targets import decide
from conformance.targets.decide import spiffe
from conformance.targets.inproc import InprocTarget
from smi.compiler.ir.decide import Request, authorize, pick_backend
from smi.compiler.ir.index import PolicyIndex

ROUTE, AUTHORIZE = decide.route, authorize

MakeScenario = Callable[..., Scenario]


@pytest.fixture(scope="module")
def suite() -> list[Scenario]:
    return discover()


def _proxy_only(scenario: Scenario) -> bool:
    """Does a step expect what only smictl proxy shows: the identity an app saw, or header
    names matched whatever their case?"""
    return any(
        isinstance(s, RequestStep)
        and (s.expect.identity is not None or any(n != n.lower() for n in s.request.headers))
        for s in scenario.steps
    )


def test_every_scenario_passes_in_process_or_is_skipped_for_a_proxy(
    suite: list[Scenario],
) -> None:
    result = run([InprocTarget()], suite)
    failed = [r.failure_text() for r in result.results if r.status not in ("passed", "skipped")]
    assert failed == []
    assert result.ok and len(result.results) == len(suite)
    skipped = {r.scenario for r in result.results if r.status == "skipped"}
    assert skipped == {s.name for s in suite if _proxy_only(s)}
    assert {row.capability for row in result.summary() if "split" in row.group_version} == {"full"}


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


ROOT = "shop/catalog"  # the ServiceAccount of the split scenarios' root service


def _as_root_service(
    index: PolicyIndex, scenario: Scenario, root: str, req: Request | None, *, rng: Random
) -> Workload | None:
    """A broken mesh's client side: it sends the request to the backend the split drew, but
    the request is authorised as the root service's workload."""
    chosen = ROUTE(index, scenario, root, req, rng=rng)
    return None if chosen is None else chosen.model_copy(update={"identity": ROOT})


def _root_and_backend(index: PolicyIndex, source: str | None, dest: str, *a: Any, **k: Any) -> Any:
    """A broken mesh's server side: a backend is allowed only if the root service is too."""
    decision = AUTHORIZE(index, source, dest, *a, **k)
    if not decision.allowed or dest == spiffe(ROOT):
        return decision
    return AUTHORIZE(index, source, spiffe(ROOT), *a, **k)


@pytest.mark.parametrize(
    ("where", "broken", "steps"),
    [("route", _as_root_service, [2, 6]), ("authorize", _root_and_backend, [6])],
)
def test_a_mesh_that_judges_split_backends_by_the_root_service_fails(
    suite: list[Scenario],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    broken: Any,
    steps: list[int],
) -> None:
    # Every split backend used to run as the root's ServiceAccount: both passed everything.
    monkeypatch.setattr(decide, where, broken)
    splits = [s for s in suite if s.area == "split"]
    result = run([InprocTarget()], splits)
    failed = {
        r.scenario: [st.number for st in r.steps if st.status == "failed"]
        for r in result.results
        if r.status != "passed"
    }
    identity = [s.name for s in splits if s.name.startswith("split/backend-identity.")]
    assert len(identity) == 5  # every split version, split v1alpha3 in v0.4.0 and v0.5.0
    assert failed == {name: steps for name in identity}


def _biased(split: Any, req: Request | None, r: float) -> str | None:
    """A broken mesh that sends 8 points more than its weight to the first backend."""
    return pick_backend(split, req, max(0.0, r - 0.08))


def test_a_split_eight_points_off_fails_every_share_step(
    suite: list[Scenario], monkeypatch: pytest.MonkeyPatch
) -> None:
    # At 400 requests and +/-0.1 such a mesh passed a 50/50 step 80% of the time.
    monkeypatch.setattr(decide, "pick_backend", _biased)
    result = run([InprocTarget()], [s for s in suite if s.area == "split"])
    share_steps = [
        st for r in result.results for st in r.steps if any(" share" in c.what for c in st.checks)
    ]
    assert {st.status for st in share_steps} == {"failed"}
    assert len(share_steps) == 25  # 75/25, 25/75, 50/50, 2/3 and 1/2 in five pairings


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
    ]
    paths = write_reports(result, tmp_path)
    md = paths["markdown"].read_text()
    assert "  - status: expected `200 for every request`, got `403 x3`" in md
    assert "got <code>403 x3</code>" in paths["html"].read_text()
    assert 'failures="1"' in paths["junit"].read_text()
