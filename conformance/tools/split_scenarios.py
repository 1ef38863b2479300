"""Generated scenarios of area `split`: TrafficSplit weights, weight-0 backends, header-matched
splits and root-service names, in every split version that can express them (DESIGN.md §3
"TrafficSplit"). Backends run as the same ServiceAccount, so one TrafficTarget (a TCPRoute for
every port) authorises the traffic in the access/specs versions of the same era; only
`backend-identity` runs a backend as a ServiceAccount of its own, to show that each backend is
authorised as itself.

Shares are judged on SHARE_COUNT requests within SHARE_TOLERANCE: a correct mesh that draws
each request independently fails one of the 25 share steps of a whole run with probability
below 1e-4, and a mesh that sends 8 points too many to one backend passes a step at most 0.4%
of the time (the computation is in docs/conformance.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.tools.cast import (
    CATALOG_CANARY,
    CATALOG_V1,
    CATALOG_V2,
    CATALOG_V3,
    FRONTEND,
    NS,
    SPLIT_COMBOS,
    SplitCombo,
    all_ports_route,
    apply,
    delete,
    denied,
    request,
    sa,
    scenario,
    tcp_rule,
)
from conformance.tools.render import Match, http_route_group, traffic_split, traffic_target

Builder = Callable[[SplitCombo], dict[str, Any]]
SHARE_COUNT = 2000
SHARE_TOLERANCE = 0.05
EXACT_COUNT = 40


def _access(combo: SplitCombo) -> dict[str, dict[str, Any]]:
    a = combo.access
    return {
        "all-ports": all_ports_route(a),
        "catalog-access": traffic_target(
            a.access,
            name="catalog-access",
            namespace=NS,
            destination=sa("catalog"),
            sources=[sa("frontend")],
            rules=[tcp_rule("all-ports")],
        ),
    }


def _split(
    combo: SplitCombo,
    backends: list[tuple[str, int | str]],
    *,
    service: str = "catalog",
    matches: list[str] | None = None,
    name: str = "catalog-rollout",
) -> dict[str, Any]:
    return traffic_split(
        combo.split, name=name, namespace=NS, service=service, backends=backends, matches=matches
    )


def _shares(count: int = SHARE_COUNT, **share: float) -> dict[str, Any]:
    return {
        "status": 200,
        "allowed": count,
        "backends": {
            "share": {k.replace("_", "-"): v for k, v in share.items()},
            "tolerance": SHARE_TOLERANCE,
        },
    }


def _counts(**counts: int) -> dict[str, Any]:
    total = sum(counts.values())
    return {
        "status": 200,
        "allowed": total,
        "backends": {"counts": {k.replace("_", "-"): v for k, v in counts.items()}},
    }


def _weights(combo: SplitCombo) -> list[tuple[str, tuple[int | str, int | str], dict[str, Any]]]:
    """(label, (weight v1, weight v2), expectation) for the five canonical splits."""
    if combo.split == "v1alpha1":  # Kubernetes quantities, mixed units on purpose
        w: list[tuple[int | str, int | str]] = [
            ("1", "0"),
            ("0", "1"),
            ("3", "1"),
            ("250m", "750m"),
            ("1", "1000m"),
        ]
    else:
        w = [(1, 0), (0, 1), (75, 25), (25, 75), (50, 50)]
    return [
        ("1/0", w[0], _counts(catalog_v1=EXACT_COUNT, catalog_v2=0)),
        ("0/1", w[1], _counts(catalog_v1=0, catalog_v2=EXACT_COUNT)),
        ("75/25", w[2], _shares(catalog_v1=0.75, catalog_v2=0.25)),
        ("25/75", w[3], _shares(catalog_v1=0.25, catalog_v2=0.75)),
        ("50/50", w[4], _shares(catalog_v1=0.5, catalog_v2=0.5)),
    ]


def weights(combo: SplitCombo) -> dict[str, Any]:
    resources = _access(combo)
    steps: list[dict[str, Any]] = [apply("all-ports", "catalog-access")]
    for label, (w1, w2), expect in _weights(combo):
        key = "split-" + label.replace("/", "-")
        resources[key] = _split(combo, [("catalog-v1", w1), ("catalog-v2", w2)])
        count = expect["allowed"]
        steps += [
            apply(key, name=f"apply the split {label} (weights {w1!r} / {w2!r})"),
            request("shop/frontend", "catalog", expect, count=count, name=f"traffic at {label}"),
        ]
    unit = (
        "Kubernetes quantities (`3`/`1`, `250m`/`750m`, `1`/`1000m`)"
        if (combo.split == "v1alpha1")
        else "integers"
    )
    return scenario(
        description=f"Weights as {unit} are relative shares: 1/0, 0/1, 75/25, 25/75 and 50/50 "
        "send that share of the root service's requests to each backend; updating the split "
        "takes effect at once.",
        capability="traffic-split/weights",
        decisions=["split-relative-weights", "split-weight-zero"],
        workloads=[FRONTEND, CATALOG_V1, CATALOG_V2],
        resources=resources,
        steps=steps,
    )


def relative_weights(combo: SplitCombo) -> dict[str, Any]:
    w: tuple[int | str, int | str] = ("1", "500m") if combo.split == "v1alpha1" else (1000, 500)
    resources = {
        **_access(combo),
        "split": _split(combo, [("catalog-v1", w[0]), ("catalog-v2", w[1])]),
    }
    return scenario(
        description=f"Weights are shares of their sum, not percentages: {w[0]} and {w[1]} send "
        "two thirds and one third.",
        capability="traffic-split/weights",
        decisions=["split-relative-weights"],
        workloads=[FRONTEND, CATALOG_V1, CATALOG_V2],
        resources=resources,
        steps=[
            apply(*resources),
            request(
                "shop/frontend",
                "catalog",
                _shares(catalog_v1=2 / 3, catalog_v2=1 / 3),
                count=SHARE_COUNT,
            ),
        ],
    )


def weight_zero_backend(combo: SplitCombo) -> dict[str, Any]:
    zero: int | str = "0m" if combo.split == "v1alpha1" else 0
    one: int | str = "1" if combo.split == "v1alpha1" else 1
    resources = {
        **_access(combo),
        "split": _split(combo, [("catalog-v1", one), ("catalog-v2", one), ("catalog-v3", zero)]),
    }
    return scenario(
        description="A backend with weight 0 receives no traffic at all, however many "
        "requests are sent; the other backends share it.",
        capability="traffic-split/weights",
        decisions=["split-weight-zero"],
        workloads=[FRONTEND, CATALOG_V1, CATALOG_V2, CATALOG_V3],
        resources=resources,
        steps=[
            apply(*resources),
            request(
                "shop/frontend",
                "catalog",
                _shares(catalog_v1=0.5, catalog_v2=0.5, catalog_v3=0.0),
                count=SHARE_COUNT,
            ),
        ],
    )


def header_matched(combo: SplitCombo) -> dict[str, Any]:
    group = http_route_group(
        combo.access.specs,
        name="beta-users",
        namespace=NS,
        matches=[Match("firefox", headers=(("user-agent", ".*Firefox.*"),))],
    )
    resources = {
        **_access(combo),
        "beta-users": group,
        "split": _split(combo, [("catalog-v1", 0), ("catalog-v2", 100)], matches=["beta-users"]),
    }
    firefox = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko Firefox/126.0"}
    return scenario(
        description="A split with `matches` splits only the requests that match its route "
        "groups (here: Firefox users all go to v2); every other request goes to the root "
        "service as if there were no split.",
        capability="traffic-split/matches",
        decisions=["split-matches"],
        workloads=[FRONTEND, CATALOG_V1, CATALOG_V2],
        resources=resources,
        steps=[
            apply(*resources),
            request(
                "shop/frontend",
                "catalog",
                _counts(catalog_v2=EXACT_COUNT),
                headers=firefox,
                count=EXACT_COUNT,
                name="matching requests are split",
            ),
            request(
                "shop/frontend",
                "catalog",
                _counts(catalog_v1=EXACT_COUNT, catalog_v2=0),
                headers={"user-agent": "curl/8.5"},
                count=EXACT_COUNT,
                name="other requests go to the root service",
            ),
        ],
    )


def service_fqdn(combo: SplitCombo) -> dict[str, Any]:
    w: tuple[int | str, int | str] = ("0", "1") if combo.split == "v1alpha1" else (0, 1)
    backends: list[tuple[str, int | str]] = [("catalog-v1", w[0]), ("catalog-v2", w[1])]
    resources = {
        **_access(combo),
        "split-dotted": _split(combo, backends, service="catalog.shop"),
        "split-fqdn": _split(combo, backends, service="catalog.shop.svc.cluster.local"),
    }
    return scenario(
        description="`spec.service` may name the root as `name.namespace` or as the full "
        "`name.namespace.svc.cluster.local`; either way the split applies to the root service.",
        capability="traffic-split/service-name",
        decisions=["split-service-name", "split-backends-same-namespace"],
        workloads=[FRONTEND, CATALOG_V1, CATALOG_V2],
        resources=resources,
        steps=[
            apply("all-ports", "catalog-access", "split-dotted"),
            request(
                "shop/frontend",
                "catalog",
                _counts(catalog_v1=0, catalog_v2=EXACT_COUNT),
                count=EXACT_COUNT,
            ),
            apply("split-fqdn"),
            request(
                "shop/frontend",
                "catalog.shop",
                _counts(catalog_v1=0, catalog_v2=EXACT_COUNT),
                count=EXACT_COUNT,
            ),
        ],
    )


def grants_no_access(combo: SplitCombo) -> dict[str, Any]:
    w: tuple[int | str, int | str] = ("0", "1") if combo.split == "v1alpha1" else (0, 1)
    resources = {
        **_access(combo),
        "split": _split(combo, [("catalog-v1", w[0]), ("catalog-v2", w[1])]),
    }
    return scenario(
        description="A TrafficSplit grants no access: without a TrafficTarget the split "
        "traffic is denied in deny mode; with one it flows to the chosen backend.",
        capability="traffic-split/access",
        decisions=["split-grants-no-access", "default-deny"],
        workloads=[FRONTEND, CATALOG_V1, CATALOG_V2],
        resources=resources,
        steps=[
            apply("split"),
            request("shop/frontend", "catalog", denied(5), count=5),
            apply("all-ports", "catalog-access"),
            request("shop/frontend", "catalog", _counts(catalog_v1=0, catalog_v2=5), count=5),
        ],
    )


def backend_identity(combo: SplitCombo) -> dict[str, Any]:
    """The canary runs as `shop/catalog-canary`, the root's workload as `shop/catalog`. A mesh
    that authorised split traffic as the root service, as both, or as any backend of the split
    passes every scenario whose backends share one ServiceAccount, and fails a step here."""
    off, on = ("0", "1") if combo.split == "v1alpha1" else (0, 1)
    resources = {
        **_access(combo),
        "canary-access": traffic_target(
            combo.access.access,
            name="canary-access",
            namespace=NS,
            destination=sa("catalog-canary"),
            sources=[sa("frontend")],
            rules=[tcp_rule("all-ports")],
        ),
        "to-canary": _split(combo, [("catalog-v1", off), ("catalog-v2", on)]),
        "to-stable": _split(combo, [("catalog-v1", on), ("catalog-v2", off)]),
    }
    to_canary = _counts(catalog_v1=0, catalog_v2=5)
    return scenario(
        description="Each split backend is authorised as its own ServiceAccount: traffic the "
        "split sends to a canary running as `shop/catalog-canary` is denied while only the root "
        "service's ServiceAccount is allowed, flows once the canary's own TrafficTarget allows "
        "it (with or without the root's), and the canary's permission allows nothing for the "
        "root's workload.",
        capability="traffic-split/access",
        decisions=["split-grants-no-access", "sources-and-rules"],
        workloads=[FRONTEND, CATALOG_V1, CATALOG_CANARY],
        resources=resources,
        steps=[
            apply("all-ports", "catalog-access", "to-canary", name="allow only shop/catalog"),
            request(
                "shop/frontend",
                "catalog",
                denied(5),
                count=5,
                name="the canary is not allowed as the root service",
            ),
            apply("canary-access", name="allow shop/catalog-canary as well"),
            request("shop/frontend", "catalog", to_canary, count=5, name="the canary is allowed"),
            delete("catalog-access", name="revoke shop/catalog"),
            request(
                "shop/frontend",
                "catalog",
                to_canary,
                count=5,
                name="the canary needs no permission of the root service",
            ),
            apply("to-stable", name="send everything to the root's workload"),
            request(
                "shop/frontend",
                "catalog",
                denied(5),
                count=5,
                name="the canary's permission does not cover another backend",
            ),
        ],
    )


ALL = SPLIT_COMBOS
MATCHES = tuple(c for c in SPLIT_COMBOS if c.has_matches)

BEHAVIOURS: dict[str, tuple[Builder, tuple[SplitCombo, ...]]] = {
    "weights": (weights, ALL),
    "relative-weights": (relative_weights, ALL),
    "weight-zero-backend": (weight_zero_backend, ALL),
    "header-matched": (header_matched, MATCHES),
    "service-name-namespace": (service_fqdn, ALL),
    "grants-no-access": (grants_no_access, ALL),
    "backend-identity": (backend_identity, ALL),
}


def generate() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for behaviour, (build, combos) in BEHAVIOURS.items():
        for combo in combos:
            out[f"split/{behaviour}.{combo.tag}"] = build(combo)
    return out
