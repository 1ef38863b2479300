"""`smictl convert` of TrafficTargets with UDPRoute rules to access v1alpha2/v1alpha1, and what
the compiler makes of the result: the same grants as the original (the hidden rules come back
from the lossy-fields annotation), never a policy without the UDP ports."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from smi import cli
from smi.apis.meta import LOSSY_ANNOTATION

ROUTES = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: t, namespace: shop}
spec: {matches: {ports: [8080]}}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: UDPRoute
metadata: {name: dns-udp, namespace: shop}
spec: {matches: {ports: [53]}}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: shop}
spec: {matches: [{name: m, pathRegex: /metrics$, methods: [GET]}]}
"""
TARGETS = """
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: dns, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: dns, namespace: shop}
  rules:
  - {kind: TCPRoute, name: t}
  - {kind: UDPRoute, name: dns-udp}
  - {kind: HTTPRouteGroup, name: g, matches: [m]}
  sources: [{kind: ServiceAccount, name: web, namespace: shop}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: dns-only, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: resolver, namespace: shop}
  rules: [{kind: UDPRoute, name: dns-udp}]
  sources: [{kind: ServiceAccount, name: web, namespace: shop}]
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _convert(capsys: pytest.CaptureFixture[str], src: Path, to: str, dst: Path) -> list[Any]:
    code, out, err = _run(capsys, "convert", "-f", str(src), "--to", to)
    assert (code, err) == (0, "")
    dst.write_text(out, encoding="utf-8")
    return list(yaml.safe_load_all(out))


@pytest.mark.parametrize("older", ["v1alpha2", "v1alpha1"])
def test_convert_parks_udp_rules_and_converting_back_restores_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], older: str
) -> None:
    src = _write(tmp_path / "tt.yaml", TARGETS)
    down = _convert(capsys, src, f"access.smi-spec.io/{older}", tmp_path / "down.yaml")
    for doc in down:
        body = doc if older == "v1alpha1" else doc["spec"]
        shown = body.get("specs" if older == "v1alpha1" else "rules") or []
        assert "UDPRoute" not in [r["kind"] for r in shown]
        lossy = json.loads(doc["metadata"]["annotations"][LOSSY_ANNOTATION])
        assert "UDPRoute" in [r["kind"] for r in lossy["rules"]["value"]]
    back = _convert(capsys, tmp_path / "down.yaml", "access.smi-spec.io/v1alpha3", tmp_path / "b")
    assert back == list(yaml.safe_load_all(src.read_text()))


def _policy(paths: list[Path]) -> dict[str, Any]:
    """The MeshPolicy the compiler builds from these files (loaded as `smictl compile` loads
    them; validation left out; the test below goes through `smictl compile`)."""
    from smi.compiler.build import compile as compile_policy
    from smi.loading import load_paths

    loaded = load_paths([str(p) for p in paths], default_namespace="default")
    assert [d for d in loaded.diagnostics if d.is_error] == []
    policy: dict[str, Any] = compile_policy(
        loaded.resources, context=loaded.context
    ).policy.to_dict()
    return policy


@pytest.mark.parametrize("older", ["v1alpha2", "v1alpha1"])
def test_the_compiler_reads_the_converted_file_with_its_udp_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], older: str
) -> None:
    routes = _write(tmp_path / "routes.yaml", ROUTES)
    src = _write(tmp_path / "tt.yaml", TARGETS)
    down = tmp_path / "down.yaml"
    _convert(capsys, src, f"access.smi-spec.io/{older}", down)
    original = _policy([routes, src])
    assert [
        r["udpPorts"]
        for r in original["destinations"]["spiffe://cluster.local/ns/shop/sa/resolver"]
    ] == [[53]]
    assert _policy([routes, down]) == original


def test_smictl_compile_grants_the_same_after_convert_to_v1alpha2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = _write(tmp_path / "routes.yaml", ROUTES)
    src = _write(tmp_path / "tt.yaml", TARGETS)
    down = tmp_path / "down.yaml"
    _convert(capsys, src, "access.smi-spec.io/v1alpha2", down)
    code, original, err = _run(capsys, "compile", "-f", str(routes), "-f", str(src))
    assert (code, err) == (0, "")
    code, converted, err = _run(capsys, "compile", "-f", str(routes), "-f", str(down))
    assert (code, err) == (0, "")
    assert converted == original
