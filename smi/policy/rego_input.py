r"""A faster way to hand a JSON-like document to regopy: `rego_input(doc) -> regopy.Input`.

regopy's own `Input(value)` walks the value in Python and makes one ctypes call per scalar,
object item and container, each through a checking wrapper that also copies every string into
a fresh `create_string_buffer`. For an admission input (about 100 values) that was 0.25–0.4 ms
per review, the largest single cost of `/validate`. This builds the very same input through the
very same C functions (`regoInputString`, `regoInputObjectItem`, ... of librego_shared), with
the wrapper layers removed: exact built-in types are dispatched on `type()`, strings are passed
as `bytes` (ctypes hands them to `char*` without a copy), and the result codes are still
checked. Anything that is not an exact `dict`/`list`/`str`/`int`/`float`/`bool`/`None` takes
regopy's own `isinstance` order (bool, int, float, str, None, Set, Mapping, Sequence), so the
engine sees the same document either way (tests/unit/smi/policy/test_policy_rego_input.py
compares both through a query of `input`).

Strings go in as rego-cpp keeps them: in their JSON-escaped spelling, without the quotes.
rego-cpp keeps a string term as it is spelled in Rego source and compares terms by that
spelling (the literal `"a\\b"`, three characters, is kept as the four of `a\\b`), and
`regoInputString` takes its bytes as such a spelling. Handed raw, a pathRegex `/admin\..*`
never equalled the Rego literal `"/admin\\..*"` (a deny list of values never matched, so the
object was admitted), and a `"` or a line break in a string made the engine's JSON output
unreadable (SMI5003). regopy's own `Input` has the same flaw. Non-ASCII stays UTF-8, as in
source. What is left is rego-cpp's own: `count` of a string with an escape counts its
spelling, for input strings and literals alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence, Set
from typing import Any

from regopy import Input
from regopy.rego_shared import RegoError, rego, rego_free_input, rego_new_input

# What json.dumps escapes with ensure_ascii=False: the quote, the backslash, control characters.
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def rego_string(value: str) -> bytes:
    """A string as rego-cpp's `regoInputString` must be given it (see the module docstring)."""
    if _NEEDS_ESCAPE.search(value) is not None:
        value = json.dumps(value, ensure_ascii=False)[1:-1]
    return value.encode("utf-8")


def rego_input(value: Any) -> Input:
    """`regopy.Input(value)`, built with fewer Python-level calls; raises RegoError or
    ValueError where regopy would."""
    handle = rego_new_input()
    try:
        _adder(handle)(value)
    except BaseException:
        rego_free_input(handle)
        raise
    made: Input = Input.__new__(Input)
    made._impl = handle  # freed by Input.__del__, as for regopy's own inputs
    return made


def _adder(handle: Any) -> Callable[[Any], None]:
    """The recursive `add(value)` bound to one input handle and the C functions."""
    put_str, put_int, put_float = rego.regoInputString, rego.regoInputInt, rego.regoInputFloat
    put_bool, put_null, put_item = (
        rego.regoInputBoolean,
        rego.regoInputNull,
        rego.regoInputObjectItem,
    )
    put_object, put_array = rego.regoInputObject, rego.regoInputArray

    def add(value: Any) -> None:
        kind = type(value)
        if kind is str:
            code = put_str(handle, rego_string(value))
        elif kind is dict:
            for key, item in value.items():
                add(key)
                add(item)
                code = put_item(handle)
                if code:
                    raise RegoError("Unable to create input", code)
            code = put_object(handle, len(value))
        elif kind is list:
            for item in value:
                add(item)
            code = put_array(handle, len(value))
        elif kind is bool:
            code = put_bool(handle, value)
        elif kind is int:
            code = put_int(handle, value)
        elif value is None:
            code = put_null(handle)
        elif kind is float:
            code = put_float(handle, value)
        else:
            code = _add_other(handle, value, add)
        if code:
            raise RegoError("Unable to create input", code)

    return add


def _add_other(handle: Any, value: Any, add_one: Callable[[Any], None]) -> int:
    """regopy's order for subclasses and other containers (tuples, sets, mappings)."""
    if value is True or value is False:
        code = rego.regoInputBoolean(handle, value)
    elif isinstance(value, int):
        code = rego.regoInputInt(handle, value)
    elif isinstance(value, float):
        code = rego.regoInputFloat(handle, value)
    elif isinstance(value, str):
        code = rego.regoInputString(handle, rego_string(value))
    elif isinstance(value, (Set, Mapping, Sequence)):
        code = _add_container(handle, value, add_one)
    else:
        raise ValueError("Cannot convert object of type " + str(type(value)) + " to rego input")
    return int(code)


def _add_container(handle: Any, value: Any, add_one: Callable[[Any], None]) -> int:
    if isinstance(value, Set):
        for item in value:
            add_one(item)
        return int(rego.regoInputSet(handle, len(value)))
    if isinstance(value, Mapping):
        for key, item in value.items():
            add_one(key)
            add_one(item)
            code = rego.regoInputObjectItem(handle)
            if code:
                raise RegoError("Unable to create input", code)
        return int(rego.regoInputObject(handle, len(value)))
    for item in value:
        add_one(item)
    return int(rego.regoInputArray(handle, len(value)))
