"""`smictl explain --to NS/SERVICE` judges the backends a TrafficSplit sends the request to: a
split grants no access (DESIGN.md §3), and the proxy of the backend that gets the request
authorizes it against its own identity. explain judged the root Service's ServiceAccount
instead: ALLOW for a request every proxy denies. With only SMI manifests (no Service in the
files, the usual CI input) it did not consult the split at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from compiler_fixtures import RunCli

# front may call ServiceAccount web on any route; nothing names web-v2
POLICY = """
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: front-to-web, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: shop}
  sources: [{kind: ServiceAccount, name: front, namespace: shop}]
  rules: [{kind: HTTPRouteGroup, name: all}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: all, namespace: shop}
spec:
  matches: [{name: any, pathRegex: ".*"}]
"""
SPLIT = """
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web-rollout, namespace: shop}
spec:
  service: web
  backends: [BACKENDS]
"""
SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop}
spec: {selector: {app: web, version: v1}, ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec: {selector: {app: web, version: v2}, ports: [{port: 8080}]}
"""
TO_V2 = "{service: web-v2, weight: 100}"
SENT_TO_V2 = (
    "shop/web: TrafficSplit shop/TrafficSplit/web-rollout sends this to shop/web-v2 (100%)\n"
)
V2_DENIED = (
    "DENY shop/front -> shop/web-v2: anything on port 8080\n"
    "  no TrafficTarget has destination shop/web-v2: default deny\n"
)


def mesh(tmp_path: Path, *docs: str, backends: str = TO_V2) -> Path:
    path = tmp_path / "mesh.yaml"
    text = "---".join((POLICY, SPLIT.replace("BACKENDS", backends), *docs))
    path.write_text(text, encoding="utf-8")
    return path


def explain(run_cli: RunCli, path: Path, *extra: str) -> tuple[int, str]:
    code, out, err = run_cli(
        "explain", "-f", str(path), "--from", "shop/front", "--to", "shop/web", *extra
    )
    assert err == ""
    return code, out


def test_a_split_backend_without_workloads_is_judged_as_its_service_account(
    run_cli: RunCli, tmp_path: Path
) -> None:
    code, out = explain(run_cli, mesh(tmp_path, SERVICES))
    assert (code, out) == (
        1,
        SENT_TO_V2 + "shop/web-v2: selects no workload in the files\n"
        "shop/web-v2: taken as a ServiceAccount\n" + V2_DENIED,
    )


def test_a_split_is_followed_without_service_manifests(run_cli: RunCli, tmp_path: Path) -> None:
    code, out = explain(run_cli, mesh(tmp_path), "--port", "8080")
    assert (code, out) == (1, SENT_TO_V2 + "shop/web-v2: taken as a ServiceAccount\n" + V2_DENIED)


def test_a_traffic_target_for_the_backend_allows(run_cli: RunCli, tmp_path: Path) -> None:
    tt = POLICY.partition("---")[0]
    to_v2 = tt.replace("front-to-web", "front-to-web-v2").replace("name: web,", "name: web-v2,")
    code, out = explain(run_cli, mesh(tmp_path, to_v2), "--port", "8080", "--path", "/")
    assert (code, out) == (
        0,
        SENT_TO_V2 + "shop/web-v2: taken as a ServiceAccount\n"
        "ALLOW shop/front -> shop/web-v2: GET / on port 8080\n"
        "  allowed by TrafficTarget shop/TrafficTarget/front-to-web-v2, match any "
        "(HTTPRouteGroup all)\n",
    )


def test_each_backend_gets_a_verdict_with_or_without_workloads(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """v1's pods run as `web`, which front may call; v2 has no workload in the files."""
    v1 = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-v1, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web, version: v1}}
    spec: {serviceAccountName: web, containers: [{name: c, image: x}]}
"""
    backends = "{service: web-v1, weight: 50}, {service: web-v2, weight: 50}"
    code, out = explain(run_cli, mesh(tmp_path, SERVICES, v1, backends=backends))
    assert code == 1
    assert out.startswith(
        "shop/web: TrafficSplit shop/TrafficSplit/web-rollout sends this to shop/web-v1 (50%), "
        "shop/web-v2 (50%)\n"
        "shop/web-v1: selects ServiceAccount(s) shop/web\n"
        "shop/web-v2: selects no workload in the files\n"
        "shop/web-v2: taken as a ServiceAccount\n"
        "ALLOW shop/front -> shop/web: any HTTP request on port 8080, no other traffic\n"
    )
    assert out.endswith(V2_DENIED + "DENY: 1 of 2 allowed\n")


@pytest.mark.parametrize(
    ("weights", "shares"),
    [
        ((999, 1), ("99.9%", "0.1%")),
        ((199, 1), ("99.5%", "0.5%")),
        ((999_999, 1), (">99.999%", "<0.001%")),
        ((2, 1), ("67%", "33%")),
    ],
)
def test_a_backend_that_gets_some_traffic_is_never_shown_at_0_or_100_percent(
    run_cli: RunCli, tmp_path: Path, weights: tuple[int, int], shares: tuple[str, str]
) -> None:
    """Weight 1 of 1000 was "(0%)", and its neighbour "(100%)": read as a backend that gets no
    traffic, which only weight 0 says (and is then named as such), while the proxy sends it
    one request in a thousand."""
    backends = (
        f"{{service: web-v1, weight: {weights[0]}}}, {{service: web-v2, weight: {weights[1]}}}"
    )
    _, out = explain(run_cli, mesh(tmp_path, backends=backends), "--port", "8080")
    assert out.startswith(
        "shop/web: TrafficSplit shop/TrafficSplit/web-rollout sends this to "
        f"shop/web-v1 ({shares[0]}), shop/web-v2 ({shares[1]})\n"
    ), out


def test_a_weight_0_backend_is_named_and_not_judged(run_cli: RunCli, tmp_path: Path) -> None:
    backends = "{service: web, weight: 0}, {service: web-v2, weight: 100}"
    code, out = explain(run_cli, mesh(tmp_path, backends=backends), "--port", "8080")
    assert (code, out) == (
        1,
        "shop/web: TrafficSplit shop/TrafficSplit/web-rollout sends this to shop/web-v2 (100%); "
        "shop/web (weight 0) gets no traffic\n"
        "shop/web-v2: taken as a ServiceAccount\n" + V2_DENIED,
    )


BETA = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: beta, namespace: shop}
spec:
  matches: [{name: beta, headers: {x-beta: "yes"}}]
"""


@pytest.mark.parametrize("services", [(), (SERVICES,)], ids=["smi-only", "with-services"])
def test_a_split_with_matches_applies_only_to_the_requests_they_take(
    run_cli: RunCli, tmp_path: Path, services: tuple[str, ...]
) -> None:
    path = mesh(tmp_path, BETA, *services)
    split = "  matches: [{kind: HTTPRouteGroup, name: beta}]\n  backends:"
    path.write_text(path.read_text().replace("  backends:", split), encoding="utf-8")
    ask = ("--port", "8080", "--method", "GET", "--path", "/")
    code, out = explain(run_cli, path, *ask, "--header", "X-Beta=yes")
    assert code == 1, out
    assert out.startswith(SENT_TO_V2)
    assert "DENY shop/front -> shop/web-v2: GET / on port 8080\n" in out
    code, out = explain(run_cli, path, *ask, "--header", "X-Beta=no")
    assert code == 0, out
    assert out.startswith(
        "shop/web: TrafficSplit shop/TrafficSplit/web-rollout does not apply to this request: "
        "none of its matches takes it\n"
    )
    assert "shop/web: taken as a ServiceAccount\n" in out
    assert "shop/web-v2" not in out
    assert out.endswith(
        "ALLOW shop/front -> shop/web: GET / on port 8080\n"
        "  allowed by TrafficTarget shop/TrafficTarget/front-to-web, match any "
        "(HTTPRouteGroup all)\n"
    )
    # No request: what the matches take goes to the backends, the rest to the root; each is
    # judged (the root alone said ALLOW, hiding that web-v2 refuses what the split sends it).
    code, out = explain(run_cli, path, "--port", "8080")
    assert code == 1, out
    assert out.startswith(
        "shop/web: TrafficSplit shop/TrafficSplit/web-rollout sends the requests its matches "
        "take to shop/web-v2 (100%), the rest to shop/web (ask with --method, --path or "
        "--header for one request)\n"
    )
    assert "ALLOW shop/front -> shop/web: " in out
    assert "DENY shop/front -> shop/web-v2: " in out
    assert out.endswith("DENY: 1 of 2 allowed\n")


def test_a_backend_without_the_port_gets_no_traffic_on_it(run_cli: RunCli, tmp_path: Path) -> None:
    """SPEC.md §TrafficSplit, as the proxy's `IndexedSplit.on_port`: on 9090, which v2 lacks,
    the request goes to the root."""
    two_ports = "{app: web}, ports: [{port: 8080}, {port: 9090}]"
    services = SERVICES.replace("{app: web}, ports: [{port: 8080}]", two_ports)
    backends = "{service: web, weight: 50}, {service: web-v2, weight: 50}"
    code, out = explain(run_cli, mesh(tmp_path, services, backends=backends), "--port", "9090")
    assert code == 0, out
    assert out.startswith(
        "shop/web: TrafficSplit shop/TrafficSplit/web-rollout sends this on port 9090 to "
        "shop/web (100%)\n"
    )
    assert "web-v2" not in out.partition("\n")[2]
