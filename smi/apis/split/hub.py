"""Unversioned hub of split.smi-spec.io: TrafficSplit.

Weights are relative shares held in milli-units, the only unit that holds every version exactly:
v1alpha1 quantities (`"500m"` = 500, `"1"` = 1000) and v1alpha2+ integers (w -> w * 1000).
A v1alpha1 weight also keeps how it was written when that is not how v1alpha1 writes its
milli-units (`1` or `"1.5"` for `"1"` and `"1500m"`), so that a round trip through an integer
version gives it back as written (see `Backend`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from smi.apis.meta import ObjectMeta

GROUP = "split.smi-spec.io"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Written = int | float | str

# The key of `Backend.weight_written` in a dumped backend (the lossy-fields annotation).
WRITTEN_KEY = "weight_written"


class Backend(_Frozen):
    """`weight_written`: the v1alpha1 weight as written, None when it is the canonical
    quantity (`smi.apis.quantity.format_milli`) of `weight_milli`.

    A private attribute, not a field: the hub form policies read (docs/policy-input.md) is the
    same whatever version a split was written in, `{service, weightMilli}`, and it iterates
    fields. Yet it is compared (pydantic compares private attributes) and dumped under
    `WRITTEN_KEY` when set, so that `smi.apis.lossy` sees an integer version lose it and
    carries it in the lossy-fields annotation, and reading the annotation back restores it."""

    service: str
    weight_milli: int
    _written: Written | None = PrivateAttr(default=None)

    @property
    def weight_written(self) -> Written | None:
        return self._written

    @model_validator(mode="wrap")
    @classmethod
    def _read_written(cls, data: Any, handler: ModelWrapValidatorHandler[Backend]) -> Backend:
        if not isinstance(data, dict) or WRITTEN_KEY not in data:
            return handler(data)  # a Backend given as one is passed through, spelling and all
        data = dict(data)
        written = data.pop(WRITTEN_KEY)
        if isinstance(written, bool) or not isinstance(written, Written | None):
            raise PydanticCustomError(
                "SMI4004", "{key} must be an integer, a number or a string", {"key": WRITTEN_KEY}
            )
        backend = handler(data)
        backend._written = written
        return backend

    @model_serializer(mode="wrap")
    def _dump_written(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if self._written is not None and isinstance(data, dict):
            data[WRITTEN_KEY] = self._written
        return data


_set = object.__setattr__


def backend(*, service: str, weight_milli: int, written: Written | None = None) -> Backend:
    """The Backend the constructor builds (then `weight_written` set), from values a wire model
    validated: without validating them again, as `smi.apis.trusted` builds the other hub
    objects (its builder refuses models with private attributes)."""
    obj = Backend.__new__(Backend)
    _set(obj, "__dict__", {"service": service, "weight_milli": weight_milli})
    _set(obj, "__pydantic_fields_set__", {"service", "weight_milli"})
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", {"_written": written})
    return obj


class MatchRef(_Frozen):
    """A reference to an HTTPRouteGroup in the split's namespace (v1alpha3+)."""

    kind: str
    name: str
    api_group: str | None = None


class TrafficSplit(_Frozen):
    """`matches` None = absent (every request is split); a tuple = only requests matching the
    referenced groups are split, the rest go to the root service."""

    kind: Literal["TrafficSplit"] = "TrafficSplit"
    metadata: ObjectMeta
    service: str
    backends: tuple[Backend, ...] = ()
    matches: tuple[MatchRef, ...] | None = None


SplitHub = TrafficSplit
