"""`smictl explain --to NS/SERVICE` asks about the port the destination's proxy authorizes on:
the app's port, where the Service's `targetPort` sends the request. It asked about the
Service's own `port`, so with `port: 80, targetPort: 8080` a TCPRoute opening 8080 (what the
proxy in front of app port 8080 allows) was reported as DENY."""

from __future__ import annotations

from pathlib import Path

import pytest
from compiler_fixtures import RunCli

POLICY = """
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: cat, namespace: shop}
  sources: [{kind: ServiceAccount, name: web, namespace: shop}]
  rules: [{kind: TCPRoute, name: r}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: r, namespace: shop}
spec: {matches: {ports: [8080]}}
"""


def mesh(tmp_path: Path, service_port: str, container_port: str = "{containerPort: 8080}") -> Path:
    path = tmp_path / "mesh.yaml"
    path.write_text(
        POLICY
        + f"""---
apiVersion: v1
kind: Service
metadata: {{name: cat, namespace: shop}}
spec:
  selector: {{app: cat}}
  ports: [{service_port}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: cat, namespace: shop}}
spec:
  template:
    metadata: {{labels: {{app: cat}}}}
    spec:
      serviceAccountName: cat
      containers: [{{name: c, image: x, ports: [{container_port}]}}]
""",
        encoding="utf-8",
    )
    return path


def explain(run_cli: RunCli, path: Path, *extra: str) -> tuple[int, str]:
    code, out, err = run_cli(
        "explain", "-f", str(path), "--from", "shop/web", "--to", "shop/cat", "--protocol", "tcp",
        *extra,
    )  # fmt: skip
    return code, out + err


def test_a_numeric_target_port_is_the_port_asked_about(run_cli: RunCli, tmp_path: Path) -> None:
    code, out = explain(run_cli, mesh(tmp_path, "{port: 80, targetPort: 8080}"))
    assert code == 0, out
    assert "shop/cat: port 80 goes to app port 8080" in out
    assert "ALLOW shop/web -> shop/cat: tcp to port 8080" in out


def test_a_named_target_port_is_looked_up_in_the_selected_pods(
    run_cli: RunCli, tmp_path: Path
) -> None:
    path = mesh(tmp_path, "{port: 80, targetPort: web}", "{containerPort: 8080, name: web}")
    code, out = explain(run_cli, path)
    assert code == 0, out
    assert "ALLOW shop/web -> shop/cat: tcp to port 8080" in out


def test_without_a_target_port_the_service_port_is_the_app_port(
    run_cli: RunCli, tmp_path: Path
) -> None:
    code, out = explain(run_cli, mesh(tmp_path, "{port: 80}"))
    assert code == 1, out
    assert "DENY shop/web -> shop/cat: tcp to port 80" in out


def test_a_target_port_named_by_no_container_is_said_and_the_service_port_asked(
    run_cli: RunCli, tmp_path: Path
) -> None:
    code, out = explain(run_cli, mesh(tmp_path, "{port: 80, targetPort: http}"))
    assert code == 1, out
    assert "port 80: its targetPort names no container port in the files" in out
    assert "DENY shop/web -> shop/cat: tcp to port 80" in out


@pytest.mark.parametrize("target", ["'\u00b2'", "'\u0668\u0660\u0668\u0660'"])
def test_a_target_port_of_non_ascii_digits_is_a_name_not_a_number(
    run_cli: RunCli, tmp_path: Path, target: str
) -> None:
    """`"²".isdigit()` is true and `int` refuses it (an internal error); Arabic-Indic 8080 was
    read as 8080. Kubernetes takes ASCII digits only: either is a port name no container has."""
    code, out = explain(run_cli, mesh(tmp_path, f"{{port: 80, targetPort: {target}}}"))
    assert code == 1, out
    assert "port 80: its targetPort names no container port in the files" in out
    assert "DENY shop/web -> shop/cat: tcp to port 80" in out


def test_port_flag_with_a_service_port_follows_its_target_port(
    run_cli: RunCli, tmp_path: Path
) -> None:
    path = mesh(tmp_path, "{port: 80, targetPort: 8080}, {port: 9090, targetPort: 9091}")
    code, out = explain(run_cli, path, "--port", "80")
    assert code == 0, out
    assert "tcp to port 8080" in out and "9091" not in out
