"""`smictl convert` to a version that cannot show a restriction, an unrelated edit in that
version, and what `explain`, `compile` and `validate` make of the result.

An edit in the older version used to drop every hidden value of the edited field: appending
HEAD to the `health` match dropped the `admin` match's token header (GET /admin/users went
DENY -> ALLOW), writing `namespace: shop` into a v1alpha3 destination dropped its v1alpha1
port (tcp to 8080 went DENY -> ALLOW). And a restriction the annotation keeps enforcing,
though the manifest's version cannot show it, is named by validation (SMI4005)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from smi import cli

ROUTES = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api-routes, namespace: shop}
spec:
  matches:
  - name: admin
    pathRegex: /admin/.*
    methods: [GET]
    headers: [{x-admin-token: "^s3cret$"}]
  - name: health
    pathRegex: /healthz$
    methods: [GET]
"""
HTTP_TARGET = """
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  rules: [{kind: HTTPRouteGroup, name: api-routes}]
  sources: [{kind: ServiceAccount, name: web, namespace: shop}]
"""
TCP = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: tcp, namespace: shop}
spec: {matches: {ports: []}}
"""
PORT_TARGET = """
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: metrics, namespace: shop}
destination: {kind: ServiceAccount, name: api, port: 9102}
specs: [{kind: TCPRoute, name: tcp}]
sources: [{kind: ServiceAccount, name: prom, namespace: shop}]
"""
Capsys = pytest.CaptureFixture[str]


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def _dump(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _run(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _convert(capsys: Capsys, src: Path, to: str) -> dict[str, Any]:
    """A conversion whose output hides a restriction names it (SMI4005); nothing else."""
    code, out, err = _run(capsys, "convert", "-f", str(src), "--to", to)
    assert code == 0
    assert err == "" or all(ln.endswith("(SMI4005)") for ln in err.splitlines())
    doc: dict[str, Any] = yaml.safe_load(out)
    return doc


def _verdict(capsys: Capsys, files: list[Path], *request: str) -> str:
    flags = [arg for f in files for arg in ("-f", str(f))]
    _, out, err = _run(capsys, "explain", *flags, *request)
    assert err == ""
    return out.split(" ", 1)[0]


def _admin(capsys: Capsys, *files: Path) -> str:
    return _verdict(
        capsys, [*files], "--from", "shop/web", "--to", "shop/api", "--port", "8080",
        "--method", "GET", "--path", "/admin/users",
    )  # fmt: skip


def _tcp_8080(capsys: Capsys, *files: Path) -> str:
    return _verdict(
        capsys, [*files], "--from", "shop/prom", "--to", "shop/api", "--port", "8080",
        "--protocol", "tcp",
    )  # fmt: skip


def test_a_head_added_to_health_in_v1alpha1_leaves_admin_behind_its_token(
    tmp_path: Path, capsys: Capsys
) -> None:
    routes = _write(tmp_path / "routes.yaml", ROUTES)
    target = _write(tmp_path / "tt.yaml", HTTP_TARGET)
    assert _admin(capsys, routes, target) == "DENY"

    down = _convert(capsys, routes, "specs.smi-spec.io/v1alpha1")
    down["matches"][1]["methods"].append("HEAD")
    edited = _dump(tmp_path / "edited-v1alpha1.yaml", down)
    assert _admin(capsys, edited, target) == "DENY"

    back = _dump(tmp_path / "back.yaml", _convert(capsys, edited, "specs.smi-spec.io/v1alpha4"))
    assert _admin(capsys, back, target) == "DENY"
    # The edit made in v1alpha1 means what the same edit made in v1alpha4 means.
    with_head = ROUTES.replace(
        "/healthz$\n    methods: [GET]", "/healthz$\n    methods: [GET, HEAD]"
    )
    by_hand = _write(tmp_path / "by-hand.yaml", with_head)
    compiled = [
        _run(capsys, "compile", "-f", str(f), "-f", str(target)) for f in (by_hand, edited, back)
    ]
    assert compiled[0][0] == 0 and '"x-admin-token"' in compiled[0][1]
    assert [c[1] for c in compiled[1:]] == [compiled[0][1]] * 2  # content hash included


def test_a_namespace_written_into_a_v1alpha3_destination_keeps_its_port(
    tmp_path: Path, capsys: Capsys
) -> None:
    tcp = _write(tmp_path / "tcp.yaml", TCP)
    target = _write(tmp_path / "tt.yaml", PORT_TARGET)
    assert _tcp_8080(capsys, tcp, target) == "DENY"

    down = _convert(capsys, target, "access.smi-spec.io/v1alpha3")
    assert "port" not in down["spec"]["destination"]
    down["spec"]["destination"]["namespace"] = "shop"
    edited = _dump(tmp_path / "edited-v1alpha3.yaml", down)
    assert _tcp_8080(capsys, tcp, edited) == "DENY"

    back = _convert(capsys, edited, "access.smi-spec.io/v1alpha1")
    assert back["destination"] == {
        "kind": "ServiceAccount",
        "name": "api",
        "namespace": "shop",
        "port": 9102,
    }
    original = _run(capsys, "compile", "-f", str(tcp), "-f", str(target))[1]
    assert _run(capsys, "compile", "-f", str(tcp), "-f", str(edited))[1] == original


def test_validate_names_a_restriction_the_annotation_enforces_out_of_sight(
    tmp_path: Path, capsys: Capsys
) -> None:
    target = _write(tmp_path / "tt.yaml", PORT_TARGET)
    down = _dump(
        tmp_path / "tt-v1alpha3.yaml", _convert(capsys, target, "access.smi-spec.io/v1alpha3")
    )
    code, out, _ = _run(capsys, "validate", "-f", str(down))
    assert code == 0
    [line] = [ln for ln in out.splitlines() if "SMI4005" in ln]
    assert line == (
        f'{down}:7: warning: metadata.annotations["smictl.io/lossy-fields"]: restores '
        "destination.port 9102, which access.smi-spec.io/v1alpha3 cannot show: smictl "
        "enforces it, and deleting the annotation drops it (SMI4005)"
    )


def test_validate_names_hidden_headers_and_tcp_ports(tmp_path: Path, capsys: Capsys) -> None:
    routes = _write(tmp_path / "routes.yaml", ROUTES + "---\n" + TCP.replace("[]", "[8080]"))
    down = tmp_path / "down.yaml"
    code, out, err = _run(
        capsys, "convert", "-f", str(routes), "--to", "specs.smi-spec.io/v1alpha1"
    )
    assert code == 0 and [ln.split(": warning: ")[1][:8] for ln in err.splitlines()] == [
        "headers ",
        "ports [8",
    ]
    down.write_text(out, encoding="utf-8")
    code, out, _ = _run(capsys, "validate", "-f", str(down))
    assert code == 0
    found = [ln.split("restores ", 1)[1] for ln in out.splitlines() if "SMI4005" in ln]
    assert found == [
        "headers {x-admin-token: ^s3cret$} of match 'admin', which specs.smi-spec.io/v1alpha1 "
        "cannot show: smictl enforces it, and deleting the annotation drops it (SMI4005)",
        "ports [8080], which specs.smi-spec.io/v1alpha1 cannot show: smictl enforces it, and "
        "deleting the annotation drops it (SMI4005)",
    ]


def test_a_stale_annotation_kept_by_apply_is_named_at_validation(
    tmp_path: Path, capsys: Capsys
) -> None:
    """The user's own v1alpha3 manifest has no port; `kubectl apply` kept the annotation of an
    earlier conversion (it is not in last-applied), which still restricts to port 9102."""
    down = _convert(
        capsys, _write(tmp_path / "tt.yaml", PORT_TARGET), "access.smi-spec.io/v1alpha3"
    )
    applied = yaml.safe_load(textwrap.dedent(PORT_TARGET))
    mine = {
        "apiVersion": "access.smi-spec.io/v1alpha3",
        "kind": "TrafficTarget",
        "metadata": {**applied["metadata"], "annotations": down["metadata"]["annotations"]},
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": "api"},
            "rules": applied["specs"],
            "sources": applied["sources"],
        },
    }
    code, out, _ = _run(capsys, "validate", "-f", str(_dump(tmp_path / "stored.yaml", mine)))
    assert code == 0
    assert "restores destination.port 9102" in out and "(SMI4005)" in out


def test_no_word_when_the_annotation_restores_no_restriction(
    tmp_path: Path, capsys: Capsys
) -> None:
    """UDPRoute rules hidden below access v1alpha3 are grants, not restrictions; and an object
    converted to a version that shows everything carries no annotation."""
    udp = _write(
        tmp_path / "tt.yaml",
        HTTP_TARGET.replace(
            "rules: [{kind: HTTPRouteGroup, name: api-routes}]",
            "rules: [{kind: HTTPRouteGroup, name: api-routes}, {kind: UDPRoute, name: dns}]",
        ),
    )
    down = _dump(tmp_path / "down.yaml", _convert(capsys, udp, "access.smi-spec.io/v1alpha2"))
    assert "smictl.io/lossy-fields" in down.read_text()
    code, out, err = _run(capsys, "validate", "-f", str(down))
    assert code == 0 and "SMI4005" not in out + err
