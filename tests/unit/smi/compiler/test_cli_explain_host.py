"""`smictl explain --to NS/SERVICE` asks about a request carrying the Host a client of the
Service sends, as every HTTP/1.1 request does, unless `--header Host=...` gives one. It asked
about a request without Host, so a match on `host` (`:authority`) denied what the proxy,
which matches on the Host the request carries, allows."""

from __future__ import annotations

from pathlib import Path

import pytest
from compiler_fixtures import RunCli

MESH = """
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: by-host, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  sources:
  - {kind: ServiceAccount, name: web, namespace: shop}
  - {kind: ServiceAccount, name: web, namespace: front}
  rules: [{kind: HTTPRouteGroup, name: hosts}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: hosts, namespace: shop}
spec:
  matches:
  - name: api-host
    headers: [{":authority": 'HOSTS'}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{port: PORT}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  template:
    metadata: {labels: {app: api}}
    spec: {serviceAccountName: api, containers: [{name: c, image: x}]}
"""


def mesh(tmp_path: Path, hosts: str, port: int = 80) -> Path:
    path = tmp_path / "mesh.yaml"
    path.write_text(MESH.replace("HOSTS", hosts).replace("PORT", str(port)), encoding="utf-8")
    return path


def explain(run_cli: RunCli, path: Path, *extra: str, caller: str = "shop/web") -> tuple[int, str]:
    code, out, err = run_cli(
        "explain", "-f", str(path), "--from", caller, "--to", "shop/api", "--path", "/", *extra
    )
    assert err == ""
    return code, out


def test_a_request_to_a_service_carries_its_name_as_host(run_cli: RunCli, tmp_path: Path) -> None:
    code, out = explain(run_cli, mesh(tmp_path, r"api(\.shop)?(:80)?"))
    assert (code, out) == (
        0,
        "shop/api: the request carries Host: api, as a client of the Service sends it (ask "
        "with --header Host=... about another)\n"
        "shop/api: selects ServiceAccount(s) shop/api\n"
        "ALLOW shop/web -> shop/api: GET / on port 80\n"
        "  allowed by TrafficTarget shop/TrafficTarget/by-host, match api-host "
        "(HTTPRouteGroup hosts)\n",
    )


@pytest.mark.parametrize(
    ("caller", "port", "host"),
    [("front/web", 80, "api.shop"), ("shop/web", 8080, "api:8080")],
)
def test_the_host_names_the_namespace_and_port_when_a_client_must(
    run_cli: RunCli, tmp_path: Path, caller: str, port: int, host: str
) -> None:
    """From another namespace a client names the Service's (`api` is its own namespace's
    Service to the proxy), and a port other than 80 is part of the Host."""
    code, out = explain(run_cli, mesh(tmp_path, host.replace(".", r"\."), port), caller=caller)
    assert code == 0, out
    assert f"the request carries Host: {host}," in out


def test_a_host_given_is_the_one_asked_about(run_cli: RunCli, tmp_path: Path) -> None:
    code, out = explain(run_cli, mesh(tmp_path, "api"), "--header", "Host=api.example")
    assert code == 1
    assert "carries Host" not in out
    assert "no match for GET /; closest match: api-host (needs header host: api)" in out


def test_a_host_read_by_no_match_is_not_mentioned(run_cli: RunCli, tmp_path: Path) -> None:
    path = mesh(tmp_path, "api")
    path.write_text(path.read_text().replace('":authority"', "x-team"), encoding="utf-8")
    code, out = explain(run_cli, path, "--header", "X-Team=api")
    assert code == 0, out
    assert "Host" not in out


def test_a_split_matching_on_host_takes_the_request(run_cli: RunCli, tmp_path: Path) -> None:
    """The outbound proxy picks by the Host too, and the backend's proxy sees the same Host
    (the root Service's name), which the backend's rules must then allow."""
    path = mesh(tmp_path, "api")
    split = """---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: canary, namespace: shop}
spec:
  service: api
  matches: [{kind: HTTPRouteGroup, name: hosts}]
  backends: [{service: api-v2, weight: 1}]
---
apiVersion: v1
kind: Service
metadata: {name: api-v2, namespace: shop}
spec: {selector: {app: api-v2}, ports: [{port: 80}]}
"""
    path.write_text(path.read_text() + split, encoding="utf-8")
    code, out = explain(run_cli, path)
    assert code == 1
    assert out.startswith(
        "shop/api: the request carries Host: api, as a client of the Service sends it (ask "
        "with --header Host=... about another)\n"
        "shop/api: TrafficSplit shop/TrafficSplit/canary sends this to shop/api-v2 (100%)\n"
    ), out
    assert "DENY shop/web -> shop/api-v2: GET / on port 80" in out
