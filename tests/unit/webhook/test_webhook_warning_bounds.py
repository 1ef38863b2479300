"""Admission warnings stay within what the API server passes on whole: one line each, at most
256 characters, a bounded number (the rest counted in one line); and the SMI spec's own example
HTTPRouteGroup (`pathRegex: /metrics`) is admitted with a warning, not refused.

The API server drops a warning holding a control character and, past 4,096 characters of
warnings, cuts each to 256 characters or leaves the rest out (its docs ask for 120).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from webhook.reviews import (
    MAX_WARNING,
    MAX_WARNINGS,
    MAX_WARNINGS_TOTAL,
    bounded_warnings,
    cut_warning,
)

Review = Callable[..., dict[str, Any]]


def warnings_of(client: FlaskClient, body: dict[str, Any]) -> list[str]:
    r = client.post("/validate", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    response = r.get_json()["response"]
    assert response["allowed"] is True, response.get("status")
    return list(response.get("warnings") or [])


def target(**spec: Any) -> dict[str, Any]:
    base = {
        "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
        "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}],
        "rules": [{"kind": "TCPRoute", "name": "tcp"}],
    }
    return {
        "apiVersion": "access.smi-spec.io/v1alpha3",
        "kind": "TrafficTarget",
        "metadata": {"name": "tt", "namespace": "shop", "labels": {"owner": "x"}},
        "spec": {**base, **spec},
    }


def test_thousands_of_warnings_become_a_bounded_list_and_a_count(
    client: FlaskClient, make_review: Review
) -> None:
    sources = [{"kind": "ServiceAccount", "name": f"s{i}"} for i in range(3000)]
    warnings = warnings_of(client, make_review(target(sources=sources)))
    assert len(warnings) <= MAX_WARNINGS + 1
    assert sum(map(len, warnings)) <= 4096
    more = int(warnings[-1].removeprefix("... and ").removesuffix(" more warnings"))
    assert len(warnings) - 1 + more >= 3000  # every namespace-less source is counted


def test_long_names_give_warnings_cut_at_a_word_with_their_code(
    client: FlaskClient, make_review: Review
) -> None:
    rules = [{"kind": "HTTPRouteGroup", "name": "r" * 240}]
    [warning] = warnings_of(client, make_review(target(rules=rules)))
    assert len(warning) <= MAX_WARNING
    assert warning.startswith("spec.rules[0].name: HTTPRouteGroup shop/rrr")
    assert warning.endswith("\u2026 (SMI3001)")


def test_the_smi_spec_example_route_group_is_admitted_with_short_warnings(
    client: FlaskClient, make_review: Review
) -> None:
    example = {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "the-routes", "namespace": "default", "labels": {"owner": "x"}},
        "spec": {"matches": [{"name": "metrics", "pathRegex": "/metrics", "methods": ["GET"]}]},
    }
    warnings = warnings_of(client, make_review(example))
    # One warning, the shipped policy's: it replaces the built-in SMI2206 (`custom.replaces`),
    # which said the same thing about the same field.
    assert not any(w.endswith("(SMI2206)") for w in warnings)
    assert (
        "[path-regex-anchored] match metrics: /metrics also matches longer paths "
        "(/metrics-admin); end it with $, / or .*"
    ) in warnings
    assert all(len(w) <= 120 for w in warnings)


def test_a_long_path_regex_warning_is_one_line_within_256_characters(
    client: FlaskClient, make_review: Review
) -> None:
    regex = "/api/v2/customers/[a-z0-9-]+/orders/[0-9]+/items/[0-9]+/reviews/[a-z]+/" + "x" * 40
    group = {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "rg", "namespace": "shop", "labels": {"owner": "x"}},
        "spec": {"matches": [{"name": "m", "pathRegex": regex}]},
    }
    warnings = warnings_of(client, make_review(group))
    assert warnings and all(len(w) <= MAX_WARNING and "\n" not in w for w in warnings)
    assert sum(w.count(regex) for w in warnings if w.startswith("[path-regex-anchored]")) == 1
    assert not any(w.endswith("(SMI2206)") for w in warnings)


def test_cut_warning_flattens_lines_and_keeps_short_ones() -> None:
    assert cut_warning("a\nb\x00c") == "a b c"
    assert cut_warning("x" * MAX_WARNING) == "x" * MAX_WARNING
    cut = cut_warning("y" * 1000)
    assert len(cut) == MAX_WARNING and cut.endswith("\u2026")


def test_bounded_warnings_dedupes_and_counts_the_rest() -> None:
    assert bounded_warnings(["a", "a", "b"]) == ["a", "b"]
    many = [f"warning {i}" for i in range(MAX_WARNINGS + 7)]
    out = bounded_warnings(many)
    assert out[:-1] == many[:MAX_WARNINGS] and out[-1] == "... and 7 more warnings"
    wide = ["z" * 200 + str(i) for i in range(40)]
    out = bounded_warnings(wide)
    assert sum(map(len, out[:-1])) <= MAX_WARNINGS_TOTAL
    assert out[-1] == f"... and {40 - len(out) + 1} more warnings"
