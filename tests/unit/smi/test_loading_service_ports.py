"""A Service's ports are checked where it is read: a `port` that is no integer 1-65535 (or a
`targetPort` that is neither that nor a name) is an error at its line, as the API server
refuses it. Such a port was dropped silently: `validate` said valid, and `explain` then said
the Service had no ports ("--port is needed ... (SMI2002)")."""

from __future__ import annotations

from pathlib import Path

import pytest

from smi.cli import main
from smi.loading import load_text

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports:
  - name: web
    port: 80
  - name: db
    PORTS
"""
TARGET = """\
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  rules: [{kind: TCPRoute, name: pg}]
  sources: [{kind: ServiceAccount, name: web, namespace: shop}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: pg, namespace: shop}
spec: {matches: {ports: [5432]}}
"""


@pytest.mark.parametrize(
    ("ports", "code", "path", "message"),
    [
        ("port: 70000", "SMI2301", "port", "port 70000 is not in 1-65535"),
        ("port: 0", "SMI2301", "port", "port 0 is not in 1-65535"),
        (
            "port: 99999999999999999999999999",
            "SMI2301",
            "port",
            "port 999999999999... is not in 1-65535",
        ),
        (
            'port: "5432"',
            "SMI2003",
            "port",
            "must be an integer, not a string (write 5432 without quotes)",
        ),
        ("port: 1.0e+26", "SMI2003", "port", "must be an integer, not a number"),
        ("port: true", "SMI2003", "port", "must be an integer, not a boolean"),
        (
            "port: 5432\n    targetPort: 70000",
            "SMI2301",
            "targetPort",
            "port 70000 is not in 1-65535",
        ),
        (
            "port: 5432\n    targetPort: [5432]",
            "SMI2003",
            "targetPort",
            "must be an integer or a port name, not a list",
        ),
    ],
)
def test_a_port_the_api_server_refuses_is_an_error_at_its_line(
    ports: str, code: str, path: str, message: str
) -> None:
    loaded = load_text(SERVICE.replace("PORTS", ports), filename="svc.yaml")
    [problem] = loaded.diagnostics
    line = 10 if path == "port" else 11
    assert (problem.code, problem.severity, problem.line) == (code, "error", line)
    assert (problem.path, problem.message) == (f"spec.ports[1].{path}", message)
    assert [c.key for c in loaded.context] == ["Service/shop/api"]  # still read


@pytest.mark.parametrize("ports", ["port: 5432", "port: 5432\n    targetPort: pg", "protocol: TCP"])
def test_valid_ports_and_port_names_are_no_problem(ports: str) -> None:
    """(A port entry without `port` is left to the API server, as other fields are.)"""
    assert load_text(SERVICE.replace("PORTS", ports), filename="svc.yaml").diagnostics == []


@pytest.mark.parametrize("command", ["validate", "explain"])
def test_validate_and_explain_name_the_port_instead_of_passing_over_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    svc, tt = tmp_path / "svc.yaml", tmp_path / "tt.yaml"
    svc.write_text(SERVICE.replace("PORTS", "port: 70000"), encoding="utf-8")
    tt.write_text(TARGET, encoding="utf-8")
    args = [command, "-f", str(svc), "-f", str(tt)]
    if command == "explain":
        args += ["--from", "shop/web", "--to", "shop/api"]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert f"{svc}:10: spec.ports[1].port: port 70000 is not in 1-65535 (SMI2301)" in out + err
    assert "--port is needed" not in out + err and "ALLOW" not in out
