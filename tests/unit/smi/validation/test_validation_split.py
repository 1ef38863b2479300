"""Per-object checks of TrafficSplit (SMI21xx): weights per version, sum > 0, backends, the root
service's form."""

from __future__ import annotations

import pytest
from validation_helpers import findings, run_checks


def split(
    backends: str, *, version: str = "v1alpha4", service: str = "web", extra: str = ""
) -> str:
    return (
        f"apiVersion: split.smi-spec.io/{version}\nkind: TrafficSplit\n"
        f"metadata: {{name: s, namespace: shop}}\nspec:\n  service: {service}\n{extra}"
        f"  backends:\n" + "".join(f"  - {b}\n" for b in backends.split(";"))
    )


def test_a_clean_split_has_no_findings() -> None:
    assert run_checks(split("{service: web-v1, weight: 90};{service: web-v2, weight: 0}")) == []


@pytest.mark.parametrize(
    ("weight", "code"),
    [("-1", "SMI2103"), ("0.5", "SMI2103"), ("2.0", None), ("'5'", "SMI2003"), ("true", "SMI2003")],
)
def test_integer_weights_from_v1alpha2_on(weight: str, code: str | None) -> None:
    diags = run_checks(split(f"{{service: a, weight: {weight}}};{{service: b, weight: 1}}"))
    assert findings(diags) == ([(code, "spec.backends[0].weight")] if code else [])


def test_negative_weight_message_names_the_value() -> None:
    [d] = run_checks(split("{service: a, weight: -3};{service: b, weight: 1}"))
    assert d.message == "must be an integer >= 0 (got -3)"
    assert d.line == 7


@pytest.mark.parametrize(
    ("weight", "code"),
    [
        ("'500m'", None),
        ("1", None),
        ("'1.5'", None),
        ("'-100m'", "SMI2103"),
        ("'1u'", "SMI2103"),
        ("'lots'", "SMI2103"),
        ("\uff11", "SMI2103"),  # fullwidth 1: not an ASCII digit, as Kubernetes requires
        ("'\u0665'", "SMI2103"),  # Arabic-Indic 5
    ],
)
def test_quantity_weights_in_v1alpha1(weight: str, code: str | None) -> None:
    text = split(
        f"{{service: a, weight: {weight}}};{{service: b, weight: '1'}}", version="v1alpha1"
    )
    assert findings(run_checks(text)) == ([(code, "spec.backends[0].weight")] if code else [])


def test_weights_must_not_all_be_zero() -> None:
    diags = run_checks(split("{service: a, weight: 0};{service: b, weight: 0}"))
    assert findings(diags) == [("SMI2104", "spec.backends")]
    v1 = split("{service: a, weight: 0m}", version="v1alpha1")
    assert findings(run_checks(v1)) == [("SMI2104", "spec.backends")]


def test_backends_are_needed_unique_and_not_the_root() -> None:
    text = split("{service: a, weight: 1};{service: a, weight: 1};{service: web, weight: 1}")
    diags = run_checks(text)
    assert sorted((d.code, d.path, d.severity) for d in diags) == [
        ("SMI2105", "spec.backends[1].service", "error"),
        ("SMI2106", "spec.backends[2].service", "warning"),
    ]
    empty = split("x", extra="").replace("  backends:\n  - x\n", "  backends: []\n")
    assert findings(run_checks(empty)) == [("SMI2101", "spec.backends")]


@pytest.mark.parametrize(
    ("service", "code"),
    [
        ("web", None),
        ("web.shop", None),
        ("web.shop.svc", None),
        ("web.shop.svc.cluster.local", None),
        ("web.other", "SMI2102"),
        ("web.shop.svc.example.com", "SMI2102"),
        # An empty label: the compiler could not place it, so admission must not pass it.
        ("web.", "SMI2102"),
        ("web.shop.", "SMI2102"),
        (".shop", "SMI2102"),
        ("Web", "SMI2006"),
    ],
)
def test_root_service_is_a_service_of_the_splits_namespace(service: str, code: str | None) -> None:
    diags = run_checks(split("{service: a, weight: 1}", service=service))
    assert findings(diags) == ([(code, "spec.service")] if code else [])


def test_match_references_are_http_route_groups() -> None:
    extra = "  matches:\n  - {kind: TCPRoute, name: t}\n"
    diags = run_checks(split("{service: a, weight: 1}", extra=extra))
    assert findings(diags) == [("SMI2107", "spec.matches[0].kind")]


def test_matches_do_not_exist_before_v1alpha3() -> None:
    extra = "  matches:\n  - {kind: HTTPRouteGroup, name: g}\n"
    diags = run_checks(split("{service: a, weight: 1}", extra=extra, version="v1alpha2"))
    assert findings(diags) == [("SMI2001", "spec.matches")]
