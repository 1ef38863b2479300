"""pydantic validation errors -> SMI diagnostics (SMI20xx), with paths in the wire layout.

The wire models (`smi.apis`) may not import `smi.errors`, so this is the one place where their
`ValidationError`s become user-facing problems:

    extra_forbidden            -> SMI2001 unknown field
    missing                    -> SMI2002 required field missing
    *_type, *_parsing, ...     -> SMI2003 wrong type ("must be a string, not an integer")
    literal_error, enum        -> SMI2004 value not allowed
    SMI#### (raised by models) -> that code, with the model's own message

Paths come from pydantic's `loc` (aliases, i.e. the wire names) as `spec.backends[1].weight`.
Types are named as JSON names them (`json_type`, shared with the wire models' own SMI2003
messages): "a string", "an integer", "a list", "an object", "null".
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from smi.apis.wire import json_type
from smi.errors import Diagnostic
from smi.yamlpos import PathPart, format_path

_OWN_CODE = re.compile(r"SMI\d{4}")
_EXPECTED = {
    "string": "a string",
    "int": "an integer",
    "float": "a number",
    "decimal": "a number",
    "bool": "a boolean",
    "list": "a list",
    "tuple": "a list",
    "set": "a list",
    "frozen_set": "a list",
    "dict": "an object",
    "model": "an object",
    "model_attributes": "an object",
    "dataclass": "an object",
    "none": "null",
}
_WRONG_TYPE_EXTRA = frozenset({"int_from_float", "bool_parsing", "int_parsing", "float_parsing"})

__all__ = ["json_type", "schema_diagnostics"]


def schema_diagnostics(exc: ValidationError, *, where: str) -> list[Diagnostic]:
    """One diagnostic per distinct (code, path); `where` names the schema, e.g.
    `split.smi-spec.io/v1alpha4 TrafficSplit`."""
    out: list[Diagnostic] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        # `at`: where below its field a validator of a whole map found the problem (an entry).
        at = (err.get("ctx") or {}).get("at")
        path = format_path(_wire_loc(err["loc"]) + (tuple(at) if isinstance(at, tuple) else ()))
        code, message = _classify(err, where=where)
        if (code, path) in seen:
            continue
        seen.add((code, path))
        out.append(Diagnostic(code=code, message=message, path=path))
    return out


def _wire_loc(loc: tuple[int | str, ...]) -> tuple[PathPart, ...]:
    """pydantic adds union members and validator names to `loc` (`function-wrap[...]`,
    `list[...]`); they are not fields of the document."""
    return tuple(p for p in loc if isinstance(p, int) or ("[" not in p and "(" not in p))


def _classify(err: Any, *, where: str) -> tuple[str, str]:
    kind: str = err["type"]
    if _OWN_CODE.fullmatch(kind):
        return kind, str(err["msg"])
    if kind == "extra_forbidden":
        return "SMI2001", f"unknown field (not in {where})"
    if kind == "missing":
        return "SMI2002", "required field missing"
    if kind in ("literal_error", "enum"):
        expected = (err.get("ctx") or {}).get("expected", "")
        return "SMI2004", f"must be {expected}, not {_show(err.get('input'))}"
    expected_type = _expected_type(kind)
    if expected_type is not None:
        return "SMI2003", f"must be {expected_type}, not {json_type(err.get('input'))}"
    return "SMI2004", str(err["msg"])


def _expected_type(kind: str) -> str | None:
    if kind in _WRONG_TYPE_EXTRA:
        return _EXPECTED[kind.partition("_")[0]]
    for suffix in ("_type", "_parsing"):
        if kind.endswith(suffix):
            base = kind.removesuffix(suffix)
            return _EXPECTED.get(base, f"a {base.replace('_', ' ')}")
    return None


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json_type(value)
    return text if len(text) <= 60 else text[:57] + "..."
