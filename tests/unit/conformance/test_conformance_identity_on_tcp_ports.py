"""The identity a destination sees is not something the in-process (or webhook) target can
observe: no app runs there, and smictl proxy's inbound listener states the caller's identity.
The target used to invent it (the source's identity whenever allowed, none on a port only
TCPRoutes cover), so an `identity` expectation could not fail there and was reported as
passed. It is now a skipped check, with the reason, and its step and scenario are skipped."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.catalog import load_file
from conformance.results import RunResult
from conformance.runner import run
from conformance.targets.inproc import InprocTarget

SCENARIO = """\
description: what the destination sees on a port only a TCPRoute covers
capability: test/identity
smi_versions: [access.smi-spec.io/v1alpha3, specs.smi-spec.io/v1alpha4]
workloads:
- identity: ops/web
- identity: ops/api
  services: [api]
  ports: [7000]
resources:
  tcp:
    apiVersion: specs.smi-spec.io/v1alpha4
    kind: TCPRoute
    metadata: {name: tcp, namespace: ops}
    spec: {matches: {ports: [7000]}}
  tt:
    apiVersion: access.smi-spec.io/v1alpha3
    kind: TrafficTarget
    metadata: {name: tt, namespace: ops}
    spec:
      destination: {kind: ServiceAccount, name: api, namespace: ops}
      rules: [{kind: TCPRoute, name: tcp}]
      sources: [{kind: ServiceAccount, name: web, namespace: ops}]
steps:
- apply: [tcp, tt]
- request: {from: ops/web, to: "api:7000", count: 2}
  expect: {status: 200, allowed: {allowed}{expected}}
"""
REASON = (
    "inproc: the caller identity a destination app sees is stated by smictl proxy "
    "(run the proxy target)"
)


def _run(tmp_path: Path, expected: str, *, allowed: int = 2) -> RunResult:
    path = tmp_path / "identity.yaml"
    text = SCENARIO.replace("{expected}", expected).replace("{allowed}", str(allowed))
    path.write_text(text, encoding="utf-8")
    return run([InprocTarget()], [load_file(path, name="test/identity")])


def test_an_identity_expectation_is_skipped_in_process_never_passed(tmp_path: Path) -> None:
    for identity in ("ops/web", "ops/someone-else"):
        result = _run(tmp_path, f", identity: {identity}")
        [r] = result.results
        assert r.status == "skipped"
        step = r.steps[1]
        assert (step.status, step.reason) == ("skipped", REASON)
        check = json.loads(json.dumps(step.to_json()))["checks"][-1]
        assert check["what"] == "identity seen by the destination"
        assert check["skipped"] == REASON.removeprefix("inproc: ")
        assert result.verdict == "NOTHING VERIFIED"


def test_a_failing_check_beside_it_still_fails_the_step(tmp_path: Path) -> None:
    [r] = _run(tmp_path, ", identity: ops/web", allowed=1).results
    assert r.status == "failed"
    assert "allowed: expected 1, got 2" in r.failure_text()
    assert "identity seen" not in r.failure_text()


def test_the_same_traffic_passes_without_asking_for_an_identity(tmp_path: Path) -> None:
    [r] = _run(tmp_path, "").results
    assert r.status == "passed"
