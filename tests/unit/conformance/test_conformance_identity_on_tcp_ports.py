"""The identity a destination sees: the in-process (and webhook) target's model agrees with the
proxy, which states the caller's identity only on a port it reads as HTTP. On a port only
TCPRoutes cover the bytes are relayed and the app sees none; the model said it saw the caller,
so the same scenario passed in process and failed through real proxies."""

from __future__ import annotations

from pathlib import Path

from conformance.catalog import load_file
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
  expect: {status: 200, allowed: 2{expected}}
"""


def _run(tmp_path: Path, expected: str) -> list[str]:
    path = tmp_path / "identity.yaml"
    path.write_text(SCENARIO.replace("{expected}", expected), encoding="utf-8")
    result = run([InprocTarget()], [load_file(path, name="test/identity")])
    return [r.failure_text() for r in result.results if r.status != "passed"]


def test_no_identity_is_seen_on_a_port_only_tcp_routes_cover(tmp_path: Path) -> None:
    [failure] = _run(tmp_path, ", identity: ops/web")
    assert "identity seen by the destination" in failure
    assert "step 2" in failure


def test_the_same_traffic_passes_without_asking_for_an_identity(tmp_path: Path) -> None:
    assert _run(tmp_path, "") == []
