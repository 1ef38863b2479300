"""Building blocks every versioned wire model uses.

Wire models mirror one apiVersion exactly: camelCase aliases, `extra="forbid"` (an unknown
field is an error with its path, never silently dropped), strict JSON types (a port written as
`"8080"` is a type error, as it is for the API server). `metadata` is the one open object.

Errors the schema layer must report with an SMI code are raised as
`PydanticCustomError("SMI####", reason)`; the loader maps an error whose `type` is a code to
that code. Semantic checks (ranges, emptiness, regex syntax, duplicates) are not done here:
they run on the hub, in `smi.validation`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

from smi.apis.meta import LOSSY_ANNOTATION, ObjectMeta
from smi.apis.quantity import MAX_MILLI, QuantityError, to_decimal, to_milli


class WireModel(BaseModel):
    """Any object inside a wire document other than `metadata`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class LabelSelectorRequirement(WireModel):
    key: str
    operator: str
    values: list[str] | None = None


class LabelSelector(WireModel):
    """A Kubernetes LabelSelector (`matchLabels`, `matchExpressions`), as access v1alpha4's
    podLabelSelector and metrics v1alpha1's selector write it."""

    match_labels: dict[str, str] | None = Field(default=None, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, alias="matchExpressions"
    )


class WireObject(WireModel):
    """A top-level SMI object. `hub_type` names the hub it converts to, so that the lossy-field
    annotation can be checked against the hub's field types while the document is validated."""

    hub_type: ClassVar[type[BaseModel]]

    metadata: ObjectMeta = Field(default_factory=ObjectMeta, strict=False)

    @field_validator("metadata")
    @classmethod
    def _lossy_annotation_valid(cls, meta: ObjectMeta) -> ObjectMeta:
        raw = meta.annotations.get(LOSSY_ANNOTATION)
        if raw is not None:
            reason = lossy_payload_problem(cls.hub_type, raw)
            if reason is not None:
                raise PydanticCustomError(
                    "SMI4004",
                    "annotation {key}: {reason}",
                    {
                        "key": LOSSY_ANNOTATION,
                        "reason": reason,
                        "at": ("annotations", LOSSY_ANNOTATION),
                    },
                )
        return meta


# --- the lossy-fields annotation --------------------------------------------------------------
# Its value is a JSON object keyed by hub field name: {"<field>": {"value": <hub field as JSON>,
# "was": "<fingerprint of what the wire object itself gives for that field>"}}.

_NOT_LOSSY = frozenset({"metadata", "kind"})


@cache
def hub_field_adapter(hub_type: type[BaseModel], name: str) -> TypeAdapter[Any]:
    annotation: Any = hub_type.model_fields[name].annotation
    return TypeAdapter(annotation)


def parse_lossy_payload(hub_type: type[BaseModel], raw: str) -> dict[str, tuple[Any, str]]:
    """The annotation as {field: (typed hub value, fingerprint)}; ValueError with a reason."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc.args[0]})") from exc
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    out: dict[str, tuple[Any, str]] = {}
    for name, entry in doc.items():
        if name not in hub_type.model_fields or name in _NOT_LOSSY:
            raise ValueError(f"{name!r} is not a field of {hub_type.__name__}")
        if not isinstance(entry, dict) or set(entry) != {"value", "was"}:
            raise ValueError(f"{name!r}: expected an object with 'value' and 'was'")
        if not isinstance(entry["was"], str):
            raise ValueError(f"{name!r}: 'was' must be a string")
        out[name] = (_stored_value(hub_type, name, entry["value"]), entry["was"])
    return out


def _stored_value(hub_type: type[BaseModel], name: str, value: Any) -> Any:
    """A stored hub field, read as strictly as the wire models read documents: smictl writes
    it from a hub value, so a port `"8080"` or `true`, a `weight_milli` of `"2"` or `2.0`, was
    written by hand, and lax reading would turn it into another value (`true` into port 1)
    unseen. (Validated as JSON text: strict JSON mode takes arrays for the hub's tuples.)"""
    try:
        return hub_field_adapter(hub_type, name).validate_json(json.dumps(value), strict=True)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":  # the text is json.dumps': only its depth can fail
            raise ValueError(f"{name!r}: JSON nested too deeply") from exc
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        reason = first["msg"]
        if first["type"].endswith("_type"):  # a value of the wrong JSON type: say which
            reason = f"{reason}, not {json_type(first['input'])}"
        raise ValueError(f"{name!r}{where}: {reason}") from exc


def lossy_payload_problem(hub_type: type[BaseModel], raw: str) -> str | None:
    try:
        parse_lossy_payload(hub_type, raw)
    except ValueError as exc:
        return str(exc)
    return None


# --- field types ------------------------------------------------------------------------------

StrictInt = Annotated[int, Strict()]

_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),  # before int: a bool is an int in Python
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "a list"),
    (tuple, "a list"),
    (dict, "an object"),
)


def json_type(value: Any) -> str:
    """How a JSON value's type reads in a message: 'a string', 'an integer', 'null'... (users
    write YAML or JSON: Python's type names, `str` or `NoneType`, mean nothing to them)."""
    if value is None:
        return "null"
    for kind, name in _JSON_TYPES:
        if isinstance(value, kind):
            return name
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def _quantity(value: Any) -> str:
    """Split v1alpha1 weight: an int or a quantity string, held as written (ints as text)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PydanticCustomError(
            "SMI2003",
            "a quantity is an integer or a string like '500m', not {type}",
            {"type": json_type(value)},
        )
    try:
        to_milli(value)
    except QuantityError as exc:
        raise PydanticCustomError("SMI2103", "{reason}", {"reason": str(exc)}) from exc
    return value if isinstance(value, str) else format_number(value)


def format_number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


Quantity = Annotated[str, PlainValidator(_quantity)]


def _any_quantity(value: Any) -> int | float | str:
    """A metric value: any quantity (sub-milli allowed), held as written."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PydanticCustomError(
            "SMI2003",
            "a quantity is a number or a string, not {type}",
            {"type": json_type(value)},
        )
    try:
        to_decimal(value)
    except QuantityError as exc:
        # SMI2103 is about split weights; a metric value that is no quantity is a wrong value
        raise PydanticCustomError("SMI2003", "{reason}", {"reason": str(exc)}) from exc
    return value


AnyQuantity = Annotated[int | float | str, PlainValidator(_any_quantity)]


# The hub holds weights in milli-units, and v1alpha1 writes them as quantities of at most
# MAX_MILLI: a larger whole weight would load, then fail to convert (or overflow a Go `int`).
MAX_WEIGHT = MAX_MILLI // 1000


def _whole_weight(value: Any) -> int:
    """Split v1alpha2+ weight: a JSON number (the CRD says `number`) that must be whole."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "SMI2003", "weight must be a number, not {type}", {"type": json_type(value)}
        )
    if isinstance(value, float) and not value.is_integer():
        raise PydanticCustomError(
            "SMI2103",
            "weight {value} is not a whole number (weights are integers from split v1alpha2 on)",
            {"value": value},
        )
    whole = int(value)
    if abs(whole) > MAX_WEIGHT:
        raise PydanticCustomError(
            "SMI2103",
            "weight {value} is out of range (at most {limit}, so that every split version, "
            "v1alpha1's milli-unit quantities included, can hold it)",
            {"value": whole, "limit": MAX_WEIGHT},
        )
    return whole


WholeWeight = Annotated[int, PlainValidator(_whole_weight)]


def _one_key(entry: dict[str, str]) -> dict[str, str]:
    if len(entry) != 1:
        raise PydanticCustomError(
            "SMI2205",
            "a header entry must be a map with exactly one key, this one has {count}",
            {"count": len(entry)},
        )
    return entry


HeaderEntry = Annotated[dict[str, str], AfterValidator(_one_key)]


def _headers(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Both wire forms: a list of single-key maps (validated element by element, so errors
    carry the element's index) and a map, turned into the list form here."""
    if isinstance(value, Mapping):
        for name, regex in value.items():
            # `at`: the entry's name, which smi.schema_errors appends to the path, so that the
            # line is the entry's, not the map's.
            if not isinstance(name, str):
                raise PydanticCustomError(
                    "SMI2003", "header name {name} must be a string", {"name": repr(name)}
                )
            if not isinstance(regex, str):
                raise PydanticCustomError(
                    "SMI2003",
                    "header {name}: value must be a string, not {type}",
                    {"name": name, "type": json_type(regex), "at": (name,)},
                )
        return handler([{name: regex} for name, regex in value.items()])
    return handler(value)


Headers = Annotated[list[HeaderEntry], WrapValidator(_headers)]


def header_pairs(headers: list[dict[str, str]] | None) -> tuple[tuple[str, str], ...] | None:
    """Hub form of headers: (lower-case name, value regex) pairs in document order."""
    if headers is None:
        return None
    return tuple((name.lower(), regex) for entry in headers for name, regex in entry.items())


def header_list(pairs: tuple[tuple[str, str], ...] | None) -> list[dict[str, str]] | None:
    """Canonical wire form of headers: the list of single-key maps (SPEC.md §3.1)."""
    return None if pairs is None else [{name: regex} for name, regex in pairs]
