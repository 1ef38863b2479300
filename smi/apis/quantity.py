"""Kubernetes resource quantities, as TrafficSplit v1alpha1 weights and metric values use them.

Only what SMI needs: parse the serialised form (`"500m"`, `"1"`, `"1.5"`, `"2Ki"`, `"1e3"`)
into exact milli-units, and write milli-units back in canonical form. Exact decimal arithmetic,
bounded input, so that a hostile `"1e999999999"` is an error and not a huge integer.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation, localcontext

MAX_MILLI = 2**63 - 1  # what a Kubernetes quantity can hold in milli-units
_MAX_TEXT = 64
_MAX_EXPONENT = 30

# ASCII digits only, as Kubernetes' ParseQuantity reads them: `\d` would take any Unicode digit
# (`"１"`, `"٥"`), which `Decimal` and `int` then read as numbers and the API server refuses.
_GRAMMAR = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exp>[eE][+-]?[0-9]+)|(?P<decimal>[numkMGTPE]))?"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


class QuantityError(ValueError):
    """The value is not a quantity smictl can hold exactly (one-line reason)."""


def to_decimal(value: int | float | str) -> Decimal:
    """The exact value of a quantity given as a JSON number or a quantity string."""
    if isinstance(value, bool):
        raise QuantityError("a quantity is a number or a string, not a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"{value} is not a finite number")
        return Decimal(repr(value))
    return _parse_text(value)


def _parse_text(text: str) -> Decimal:
    if len(text) > _MAX_TEXT:
        raise QuantityError(f"quantity longer than {_MAX_TEXT} characters")
    found = _GRAMMAR.fullmatch(text)
    if found is None:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity (e.g. 1, 500m, 1.5)")
    with localcontext() as ctx:
        ctx.prec = 200
        try:
            number = Decimal(found["number"])
        except InvalidOperation as exc:  # pragma: no cover - the grammar admits only numbers
            raise QuantityError(f"{text!r} is not a number") from exc
        if found["binary"]:
            return number * int(1024 ** _BINARY[found["binary"]])
        exponent = int(found["exp"][1:]) if found["exp"] else _DECIMAL.get(found["decimal"], 0)
        if abs(exponent) > _MAX_EXPONENT:
            raise QuantityError(f"{text!r}: exponent out of range")
        return number.scaleb(exponent)


def to_milli(value: int | float | str) -> int:
    """Exact milli-units of a quantity; an error when it is finer than 1m or out of range."""
    with localcontext() as ctx:
        ctx.prec = 200
        milli = to_decimal(value) * 1000
        if milli != milli.to_integral_value():
            raise QuantityError(f"{value!r} is finer than one milli-unit (1m)")
        if abs(milli) > MAX_MILLI:
            raise QuantityError(f"{value!r} is out of range")
        return int(milli)


def format_milli(milli: int) -> str:
    """Canonical quantity for milli-units: `"1"` for 1000, `"500m"` for 500."""
    if milli % 1000 == 0:
        return str(milli // 1000)
    return f"{milli}m"
