"""`smictl access-matrix` meets an L4 route's ports with the TrafficTarget's destination port
(access v1alpha1/v1alpha2): a TCPRoute without ports under `destination.port: 5432` read
`tcp: every port (any traffic, HTTP included) (port 5432 only)`, which says both."""

from __future__ import annotations

from pathlib import Path

import pytest
from compiler_fixtures import RunCli

MESH = """
apiVersion: specs.smi-spec.io/{version}
kind: TCPRoute
metadata: {{name: t, namespace: ns}}
spec: {spec}
---
apiVersion: specs.smi-spec.io/v1alpha3
kind: HTTPRouteGroup
metadata: {{name: r, namespace: ns}}
spec:
  matches: [{{name: metrics, pathRegex: "/metrics$", methods: [GET]}}]
---
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {{name: c, namespace: ns}}
spec:
  destination: {{kind: ServiceAccount, name: d, port: 5432}}
  rules: [{{kind: TCPRoute, name: t}}, {{kind: HTTPRouteGroup, name: r, matches: [metrics]}}]
  sources: [{{kind: ServiceAccount, name: c, namespace: ns}}]
"""


@pytest.mark.parametrize(
    ("version", "spec", "tcp"),
    [
        ("v1alpha3", "{}", "tcp: port 5432 (any traffic, HTTP included)"),
        (
            "v1alpha4",
            "{matches: {ports: [5432, 6000]}}",
            "tcp: port 5432 (any traffic, HTTP included)",
        ),
        (
            "v1alpha4",
            "{matches: {ports: [6000]}}",
            "tcp: no port (its ports are not the destination's port 5432)",
        ),
    ],
)
def test_the_destination_port_meets_the_route_ports(
    run_cli: RunCli, tmp_path: Path, version: str, spec: str, tcp: str
) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(MESH.format(version=version, spec=spec), encoding="utf-8")
    code, out, err = run_cli("access-matrix", "-f", str(path))
    assert code == 0, out + err
    rows = [line for line in out.splitlines() if line.startswith("| ns/c | ns/d |")]
    assert rows == [
        f"| ns/c | ns/d | GET /metrics$ (port 5432 only)<br>{tcp} | ns/TrafficTarget/c |"
    ]
