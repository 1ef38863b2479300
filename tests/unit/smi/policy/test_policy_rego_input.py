"""`rego_input` gives the engine exactly the document regopy's own `Input` gives it, but for
strings, which it hands over in the escaped spelling rego-cpp compares by (regopy's own
`Input` does not: `input.s == "a\\\\b"` was never true for the input string `a\\b`)."""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from regopy import Input, Interpreter
from regopy.rego_shared import rego_free_output, rego_output_string, rego_query

from smi.policy.rego_input import rego_input, rego_string


class Colour(enum.IntEnum):
    RED = 7


class Name(str):
    pass


DOCUMENTS: list[Any] = [
    {},
    [],
    "plain",
    0,
    None,
    True,
    {"a": 1, "b": -2, "big": 2**62, "f": 1.5, "whole": 2.0, "t": True, "n": None},
    {"nested": {"list": [1, "two", [3.0, {"four": False}]], "empty": {}, "none": []}},
    {"unicode": "grüße ✓ 日本", "quote": 'say "hi"\\', "newline": "a\nb\tc"},
    {"tuple": (1, 2), "set": {3}, "frozen": frozenset({"x"}), "ordered": OrderedDict(k=1)},
    {"proxy": MappingProxyType({"m": [1]}), "enum": Colour.RED, "sub": Name("s")},
    {"request": {"uid": "u", "object": {"spec": {"backends": [{"weight": 90}]}}}, "hub": None},
]


def seen(value: Input) -> str:
    """The engine's own rendering of `input` (raw: regopy's Output cannot parse a string with a
    control character in it, which is exactly the kind of value worth comparing)."""
    rego = Interpreter()
    rego.set_input(value)
    out = rego_query(rego._impl, "x := input")
    try:
        return str(rego_output_string(out))
    finally:
        rego_free_output(out)


@pytest.mark.parametrize("doc", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_the_engine_sees_the_same_document(doc: Any) -> None:
    assert seen(rego_input(doc)) == seen(Input(spelled(doc)))


def spelled(value: Any) -> Any:
    """`value` with every string (keys too) in the escaped spelling `rego_input` hands over."""
    if isinstance(value, str):
        return rego_string(value).decode("utf-8")
    if isinstance(value, (enum.Enum, int, float)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {spelled(k): spelled(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return {spelled(v) for v in value}
    if isinstance(value, tuple):
        return tuple(spelled(v) for v in value)
    return [spelled(v) for v in value]


def test_a_value_json_cannot_hold_is_refused_like_regopy() -> None:
    with pytest.raises(ValueError, match="Cannot convert object of type"):
        Input({"bad": object()})
    with pytest.raises(ValueError, match="Cannot convert object of type"):
        rego_input({"bad": object()})


def test_inputs_can_be_replaced_many_times() -> None:
    rego = Interpreter()
    for i in range(50):
        rego.set_input(rego_input({"i": i, "s": str(i)}))
    assert str(rego.query("x := input.s")) == str(Interpreter().query('x := "49"'))
