"""Generated scenarios of HTTPRouteGroup matching (area `access`): paths, methods, headers in
both wire forms, rules with and without `matches`, and linear-time regexes, in every
access/specs version pair that can express them (DESIGN.md §3 "HTTPRouteGroup matching")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.tools.cast import (
    ACCESS_COMBOS,
    CATALOG,
    FRONTEND,
    NS,
    AccessCombo,
    allowed,
    apply,
    catalog_tt,
    denied,
    http_rule,
    request,
    scenario,
)
from conformance.tools.render import Match, http_route_group

Builder = Callable[[AccessCombo], dict[str, Any]]


def path_matching(combo: AccessCombo) -> dict[str, Any]:
    group = http_route_group(
        combo.specs,
        name="api",
        namespace=NS,
        matches=[
            Match("counter", path="/counter$", methods=("GET",)),
            Match("api", path="/api", methods=("*",)),
        ],
    )
    return scenario(
        description="pathRegex is matched against the path without its query string and "
        "anchored at the start only: `/counter$` does not allow `/incrementcounter`, `/api` "
        "allows `/apiary`.",
        capability="traffic-specs/path",
        decisions=["path-anchored-at-start", "match-and-or"],
        workloads=[FRONTEND, CATALOG],
        resources={"api": group, "tt": catalog_tt(combo, [http_rule("api")])},
        steps=[
            apply("api", "tt"),
            request("shop/frontend", "catalog", allowed(), path="/counter"),
            request("shop/frontend", "catalog", allowed(), path="/counter?step=2&x=/y"),
            request("shop/frontend", "catalog", denied(), path="/incrementcounter"),
            request("shop/frontend", "catalog", denied(), path="/counter/reset"),
            request("shop/frontend", "catalog", allowed(), path="/api"),
            request("shop/frontend", "catalog", allowed(), method="PUT", path="/apiary"),
            request("shop/frontend", "catalog", denied(), path="/v1/api"),
        ],
    )


def method_matching(combo: AccessCombo) -> dict[str, Any]:
    matches = [
        Match("read-books", path="/books", methods=("GET", "HEAD")),
        Match("cart", path="/cart", methods=("*",)),
    ]
    steps = [
        request("shop/frontend", "catalog", allowed(), path="/books/1"),
        request("shop/frontend", "catalog", allowed(), method="HEAD", path="/books"),
        request("shop/frontend", "catalog", denied(), method="POST", path="/books"),
        request("shop/frontend", "catalog", allowed(), method="DELETE", path="/cart/3"),
        request("shop/frontend", "catalog", allowed(), method="PATCH", path="/cart"),
    ]
    decisions = ["match-and-or"]
    if combo.specs != "v1alpha1":  # v1alpha1 requires every field of a match
        matches += [
            Match("wishlist", path="/wishlist"),
            Match("uploads", methods=("PUT",)),
        ]
        steps += [
            request(
                "shop/frontend",
                "catalog",
                allowed(),
                method="OPTIONS",
                path="/wishlist",
                name="no methods = any method",
            ),
            request(
                "shop/frontend",
                "catalog",
                allowed(),
                method="PUT",
                path="/files/x",
                name="no pathRegex = any path",
            ),
            request("shop/frontend", "catalog", denied(), method="POST", path="/files/x"),
        ]
        decisions.append("missing-path-or-method")
    group = http_route_group(combo.specs, name="shop-api", namespace=NS, matches=matches)
    return scenario(
        description="Methods: a list allows any of its methods, `*` allows every method"
        + (
            "; a match without methods allows every method, one without pathRegex every path."
            if combo.specs != "v1alpha1"
            else "."
        ),
        capability="traffic-specs/method",
        decisions=decisions,
        workloads=[FRONTEND, CATALOG],
        resources={"shop-api": group, "tt": catalog_tt(combo, [http_rule("shop-api")])},
        steps=[apply("shop-api", "tt"), *steps],
    )


def _header_matching(combo: AccessCombo, form: str) -> dict[str, Any]:
    group = http_route_group(
        combo.specs,
        name="clients",
        namespace=NS,
        header_form=form,  # type: ignore[arg-type]
        matches=[
            Match(
                "android-insiders",
                path="/shop/",
                methods=("GET",),
                headers=(("user-agent", ".*Android.*"), ("cookie", ".*type=insider.*")),
            ),
            Match("iphone-users", headers=(("user-agent", ".*iPhone.*"),)),
            Match("gold-tier", headers=(("x-tier", "gold"),)),
        ],
    )
    android = {"user-agent": "Mozilla/5.0 (Linux; Android 14)", "cookie": "a=1; type=insider"}
    return scenario(
        description=f"Header matching, headers in the {form} form: within a match path AND "
        "method AND every header; across matches OR; header names are case-insensitive; "
        "values are regexes matched against the whole value.",
        capability="traffic-specs/headers",
        decisions=["match-and-or", "header-forms"],
        workloads=[FRONTEND, CATALOG],
        resources={"clients": group, "tt": catalog_tt(combo, [http_rule("clients")])},
        steps=[
            apply("clients", "tt"),
            request(
                "shop/frontend",
                "catalog",
                allowed(),
                path="/shop/cart",
                headers=android,
                name="every condition of android-insiders",
            ),
            request(
                "shop/frontend",
                "catalog",
                denied(),
                path="/shop/cart",
                headers={"user-agent": android["user-agent"]},
                name="one header missing",
            ),
            request(
                "shop/frontend",
                "catalog",
                denied(),
                path="/shop/cart",
                headers={"cookie": android["cookie"]},
                name="the other header missing",
            ),
            request(
                "shop/frontend",
                "catalog",
                denied(),
                method="POST",
                path="/shop/cart",
                headers=android,
                name="method differs",
            ),
            request(
                "shop/frontend",
                "catalog",
                denied(),
                path="/account",
                headers=android,
                name="path differs",
            ),
            request(
                "shop/frontend",
                "catalog",
                allowed(),
                method="DELETE",
                path="/account",
                headers={"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)"},
                name="another match (OR)",
            ),
            request(
                "shop/frontend",
                "catalog",
                allowed(),
                path="/x",
                headers={"USER-AGENT": "iPhone"},
                name="header name in upper case",
            ),
            request("shop/frontend", "catalog", allowed(), headers={"x-tier": "gold"}),
            request(
                "shop/frontend",
                "catalog",
                denied(),
                headers={"x-tier": "golden"},
                name="value regex matches the whole value",
            ),
            request("shop/frontend", "catalog", denied(), name="no headers at all"),
        ],
    )


def header_matching_list(combo: AccessCombo) -> dict[str, Any]:
    return _header_matching(combo, "list")


def header_matching_map(combo: AccessCombo) -> dict[str, Any]:
    return _header_matching(combo, "map")


def rule_matches(combo: AccessCombo) -> dict[str, Any]:
    group = http_route_group(
        combo.specs,
        name="the-routes",
        namespace=NS,
        matches=[
            Match("metrics", path="/metrics$", methods=("GET",)),
            Match("health", path="/health$", methods=("GET",)),
        ],
    )
    return scenario(
        description="A rule naming `matches: [metrics]` allows only that match; the same rule "
        "without `matches`, or with an empty list, allows every match of the group, and "
        "nothing outside it.",
        capability="traffic-access/rule-matches",
        decisions=["rule-without-matches"],
        workloads=[FRONTEND, CATALOG],
        resources={
            "the-routes": group,
            "metrics-only": catalog_tt(combo, [http_rule("the-routes", ("metrics",))]),
            "no-matches": catalog_tt(combo, [http_rule("the-routes")]),
            "empty-matches": catalog_tt(combo, [http_rule("the-routes", ())]),
        },
        steps=[
            apply("the-routes", "metrics-only"),
            request("shop/frontend", "catalog", allowed(), path="/metrics"),
            request("shop/frontend", "catalog", denied(), path="/health"),
            apply("no-matches", name="update the TrafficTarget: rule without matches"),
            request("shop/frontend", "catalog", allowed(), path="/metrics"),
            request("shop/frontend", "catalog", allowed(), path="/health"),
            request("shop/frontend", "catalog", denied(), path="/orders"),
            apply("empty-matches", name="update the TrafficTarget: matches: []"),
            request("shop/frontend", "catalog", allowed(), path="/health"),
        ],
    )


def hostile_regex(combo: AccessCombo) -> dict[str, Any]:
    group = http_route_group(
        combo.specs,
        name="letters",
        namespace=NS,
        matches=[Match("as", path="/(a+)+$", methods=("GET",))],
    )
    hostile = "/" + "a" * 4000 + "b"
    return scenario(
        description="Path regexes are matched in linear time: `/(a+)+$`, catastrophic for a "
        "backtracking engine, answers a 4,000-character hostile path at once (three requests "
        "within 2 s).",
        capability="traffic-specs/re2",
        decisions=["re2-only"],
        workloads=[FRONTEND, CATALOG],
        resources={"letters": group, "tt": catalog_tt(combo, [http_rule("letters")])},
        steps=[
            apply("letters", "tt"),
            request("shop/frontend", "catalog", allowed(), path="/aaaa"),
            # Linear time answers in milliseconds; 2 s leaves room for a loaded 2-core CI
            # machine and is far below what backtracking takes (it never finishes).
            request("shop/frontend", "catalog", {**denied(3), "within": 2}, path=hostile, count=3),
        ],
    )


ALL = ACCESS_COMBOS
HEADERS = tuple(c for c in ACCESS_COMBOS if c.has_headers)

BEHAVIOURS: dict[str, tuple[Builder, tuple[AccessCombo, ...]]] = {
    "path-matching": (path_matching, ALL),
    "method-matching": (method_matching, ALL),
    "header-matching-list-form": (header_matching_list, HEADERS),
    "header-matching-map-form": (header_matching_map, HEADERS),
    "rule-matches": (rule_matches, ALL),
    "hostile-regex": (hostile_regex, ALL),
}


def generate() -> dict[str, dict[str, Any]]:
    """Scenario name -> document."""
    return {
        f"access/{behaviour}.{combo.tag}": build(combo)
        for behaviour, (build, combos) in BEHAVIOURS.items()
        for combo in combos
    }
