"""`smictl explain --to NS/SERVICE` without --protocol asks about a Service port that is listed
only with `protocol: UDP` as UDP traffic. It asked about HTTP on every port, so a UDPRoute that
opens a DNS Service's port was reported as `DENY ... its rules allow only udp traffic, not tcp
traffic`, and `--protocol udp` judged the Service's TCP ports as UDP: no question told the
Service's real access."""

from __future__ import annotations

from pathlib import Path

import pytest
from compiler_fixtures import RunCli

MESH = """
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: ns1}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: ns1}
  sources: [{kind: ServiceAccount, name: web, namespace: ns1}]
  rules: [{kind: TCPRoute, name: tcp}, {kind: UDPRoute, name: dns}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: tcp, namespace: ns1}
spec: {matches: {ports: [8080]}}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: UDPRoute
metadata: {name: dns, namespace: ns1}
spec: {matches: {ports: [5353]}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: ns1}
spec:
  selector: {app: api}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
  - {name: both, port: 54, targetPort: 5354, protocol: UDP}
  - {name: both-tcp, port: 54, targetPort: 5354, protocol: TCP}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: ns1}
spec:
  template:
    metadata: {labels: {app: api}}
    spec:
      serviceAccountName: api
      containers: [{name: c, image: x}]
"""


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    path = tmp_path / "mesh.yaml"
    path.write_text(MESH, encoding="utf-8")
    return path


def explain(run_cli: RunCli, path: Path, *extra: str) -> tuple[int, list[str]]:
    code, out, _ = run_cli(
        "explain", "-f", str(path), "--from", "ns1/web", "--to", "ns1/api", *extra
    )
    return code, [line for line in out.splitlines() if line.startswith(("ALLOW ", "DENY "))]


def test_a_udp_service_port_is_asked_about_as_udp(run_cli: RunCli, mesh: Path) -> None:
    code, verdicts = explain(run_cli, mesh)
    assert verdicts == [
        "ALLOW ns1/web -> ns1/api: udp to port 5353",
        # (a port listed for TCP and UDP alike is asked about as before: HTTP)
        "DENY ns1/web -> ns1/api: anything on port 5354",
        "ALLOW ns1/web -> ns1/api: anything on port 8080",
    ]
    assert code == 1


def test_the_udp_port_alone(run_cli: RunCli, mesh: Path) -> None:
    assert explain(run_cli, mesh, "--port", "53") == (
        0,
        ["ALLOW ns1/web -> ns1/api: udp to port 5353"],
    )


@pytest.mark.parametrize(
    ("extra", "verdict"),
    [
        (("--protocol", "tcp"), "DENY ns1/web -> ns1/api: tcp to port 5353"),
        (("--method", "GET", "--path", "/"), "DENY ns1/web -> ns1/api: GET / on port 5353"),
    ],
)
def test_a_protocol_or_request_given_is_asked_as_given(
    run_cli: RunCli, mesh: Path, extra: tuple[str, ...], verdict: str
) -> None:
    code, verdicts = explain(run_cli, mesh, "--port", "53", *extra)
    assert (code, verdicts) == (1, [verdict])
