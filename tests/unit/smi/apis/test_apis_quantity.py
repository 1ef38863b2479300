"""Kubernetes quantities as split v1alpha1 weights: exact milli-units, bounded input."""

from __future__ import annotations

import pytest

from smi.apis.quantity import QuantityError, format_milli, to_milli


@pytest.mark.parametrize(
    ("value", "milli"),
    [
        ("500m", 500),
        ("1", 1000),
        (1, 1000),
        ("1.5", 1500),
        (1.5, 1500),
        ("10m", 10),
        ("1500m", 1500),
        ("0m", 0),
        ("0", 0),
        (".5", 500),
        ("1.", 1000),
        ("+2", 2000),
        ("-1", -1000),
        ("1k", 1_000_000),
        ("2Ki", 2_048_000),
        ("1e3", 1_000_000),
        ("1E-3", 1),
        ("1000u", 1),
        ("1000000n", 1),
        ("1P", 10**18),
    ],
)
def test_quantities_convert_to_exact_milli_units(value: int | float | str, milli: int) -> None:
    assert to_milli(value) == milli


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1u", "finer than one milli-unit"),
        ("1500u", "finer than one milli-unit"),
        ("0.0001", "finer than one milli-unit"),
        (0.0005, "finer than one milli-unit"),
        ("abc", "not a Kubernetes quantity"),
        ("1 m", "not a Kubernetes quantity"),
        ("5x", "not a Kubernetes quantity"),
        # Kubernetes reads ASCII digits only; `\d` took these, and Decimal read them as numbers.
        ("\uff11", "not a Kubernetes quantity"),  # fullwidth 1
        ("\u0665", "not a Kubernetes quantity"),  # Arabic-Indic 5
        ("1\u0665m", "not a Kubernetes quantity"),
        ("1e\u0663", "not a Kubernetes quantity"),
        ("", "not a Kubernetes quantity"),
        ("1e999999999", "exponent out of range"),
        ("9" * 80, "longer than"),
        ("1E", "out of range"),
        (float("nan"), "not a finite number"),
        (True, "not a boolean"),
    ],
)
def test_bad_quantities_say_why(value: int | float | str, reason: str) -> None:
    with pytest.raises(QuantityError, match=reason):
        to_milli(value)


@pytest.mark.parametrize(
    ("milli", "text"), [(1000, "1"), (500, "500m"), (1500, "1500m"), (0, "0"), (-250, "-250m")]
)
def test_milli_units_format_canonically(milli: int, text: str) -> None:
    assert format_milli(milli) == text
    assert to_milli(text) == milli
