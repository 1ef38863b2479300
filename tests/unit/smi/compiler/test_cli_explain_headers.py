"""`smictl explain --header` reads headers as the proxy that enforces the verdict does: a
repeated header is its values joined with `,` (the last one won: `X-Team=red X-Team=blue` was
ALLOW for `blue|green`, which the proxy denies), and a value loses the whitespace around it
(`X-Team=blue ` was DENY, which the proxy allows). And the note outside deny mode says what
the verdicts mean there: permissive verdicts are not deny mode's."""

from __future__ import annotations

from pathlib import Path

import pytest
from compiler_fixtures import RunCli

MESH = """
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: admins, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  sources: [{kind: ServiceAccount, name: web, namespace: shop}]
  rules: [{kind: HTTPRouteGroup, name: admin, matches: [teams]}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: admin, namespace: shop}
spec:
  matches:
  - name: teams
    pathRegex: /admin/.*
    headers: {X-Team: "blue|green"}
"""
ALLOWED = (
    "ALLOW shop/web -> shop/api: GET /admin/users on port 8080\n"
    "  allowed by TrafficTarget shop/TrafficTarget/admins, match teams (HTTPRouteGroup admin)\n"
)
DENIED = (
    "DENY shop/web -> shop/api: GET /admin/users on port 8080\n"
    "  source in sources (shop/TrafficTarget/admins) but no match for GET /admin/users; "
    "closest match: teams (needs header x-team: blue|green)\n"
)


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    path = tmp_path / "mesh.yaml"
    path.write_text(MESH, encoding="utf-8")
    return path


def explain(run_cli: RunCli, mesh: Path, *extra: str) -> tuple[int, str]:
    code, out, err = run_cli(
        "explain", "-f", str(mesh), "--from", "shop/web", "--to", "shop/api", "--port", "8080",
        "--method", "GET", "--path", "/admin/users", *extra,
    )  # fmt: skip
    assert err == ""
    return code, out


def test_a_repeated_header_is_its_values_joined(run_cli: RunCli, mesh: Path) -> None:
    # the proxy sees `x-team: red,blue`, which does not fully match `blue|green`
    assert explain(run_cli, mesh, "--header", "X-Team=red", "--header", "X-Team=blue") == (
        1,
        DENIED,
    )
    assert explain(run_cli, mesh, "--header", "X-Team=blue", "--header", "x-team=red") == (
        1,
        DENIED,
    )
    assert explain(run_cli, mesh, "--header", "X-Team=blue") == (0, ALLOWED)


@pytest.mark.parametrize("value", ["blue ", "blue\t", " blue", "\t blue \t"])
def test_whitespace_around_a_value_is_not_part_of_it(
    run_cli: RunCli, mesh: Path, value: str
) -> None:
    assert explain(run_cli, mesh, "--header", f"X-Team={value}") == (0, ALLOWED)


def test_permissive_mode_does_not_claim_deny_mode_verdicts(run_cli: RunCli, mesh: Path) -> None:
    code, out = explain(run_cli, mesh, "--mode", "permissive", "--header", "X-Team=red")
    assert code == 0
    assert out == (
        "ALLOW shop/web -> shop/api: GET /admin/users on port 8080\n"
        "  permissive mode: policies are inert and every request is allowed\n"
        "note: mode permissive: policies are inert and every request is allowed, so the "
        "verdicts above do not say what the TrafficTargets allow (ask without --mode for that)\n"
    )


def test_audit_mode_says_nothing_is_enforced(run_cli: RunCli, mesh: Path) -> None:
    code, out = explain(run_cli, mesh, "--mode", "audit", "--header", "X-Team=red")
    assert code == 1
    assert out == DENIED + (
        "  audit mode: this would be denied in deny mode; it is not enforced\n"
        "note: mode audit: nothing is enforced: a request denied above is let through and "
        "recorded as a would-deny\n"
        "note: mode audit: the verdicts above say what deny mode would do\n"
    )
