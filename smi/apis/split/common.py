"""Wire pieces and conversion helpers shared by the TrafficSplit versions.

The hub holds weights in milli-units. v1alpha1 quantities convert exactly both ways, and a
weight not written as v1alpha1 writes its milli-units (`1` for `"1"`, `"1.5"` for `"1500m"`)
keeps its spelling in the hub (`hub.Backend.weight_written`), so that it rides in the
lossy-fields annotation through an integer version and comes back as written. The integer
versions (v1alpha2+) read `w` as `w * 1000`; going back, whole units are written as they are,
and anything finer is written as ratio-preserving integers (the milli weights divided by their
greatest common divisor: 10m/100m/1500m -> 1/10/150), the exact milli weights riding in the
lossy-fields annotation.

`matches` (v1alpha3+) ride in that annotation below v1alpha3 and only narrow the split (the
requests they do not match go to the root service), so validation names them as it names the
other hidden restrictions (`MATCHES`, `smi.apis.lossy.Narrowing`, SMI4005). v1alpha1 and
v1alpha2 have no `matches` a client could edit, so the edit rule of `Narrowing` has nothing to
act on there: they are declared for naming only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import Field, PlainValidator, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from smi.apis import lossy
from smi.apis.quantity import QuantityError, format_milli, to_milli
from smi.apis.split import hub
from smi.apis.trusted import hub_builder
from smi.apis.wire import MAX_WEIGHT, Quantity, WholeWeight, WireModel

# Hub objects from validated wire values (`smi.apis.trusted`): every field, in field order.
_match_ref = hub_builder(hub.MatchRef)
# `matches` given (v1alpha3+), or left to its default (v1alpha1, v1alpha2).
build_split = hub_builder(hub.TrafficSplit, defaulted=("kind",))
build_split_without_matches = hub_builder(hub.TrafficSplit, defaulted=("kind", "matches"))


_QUANTITY: TypeAdapter[str] = TypeAdapter(Quantity)


def _as_written(value: Any) -> int | float | str:
    """`Quantity`'s checks and errors, but the value is kept as written: `Quantity` holds `1`
    as `"1"`, and a split read and written again came back with its weights respelled."""
    try:
        _QUANTITY.validate_python(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PydanticCustomError(first["type"], "{reason}", {"reason": first["msg"]}) from None
    written: int | float | str = value  # `Quantity` let only these through
    return written


WrittenQuantity = Annotated[int | float | str, PlainValidator(_as_written)]


class QuantityBackend(WireModel):
    """v1alpha1 backend: the weight is a Kubernetes quantity (`1` = `1000m`), as written."""

    service: str
    weight: WrittenQuantity


class Backend(WireModel):
    """v1alpha2+ backend: the weight is a whole number."""

    service: str
    weight: WholeWeight


class MatchRef(WireModel):
    """v1alpha3+ `spec.matches[]`: an HTTPRouteGroup in the split's namespace. `apiGroup` is
    in the Go type (TypedLocalObjectReference), not in the CRD; accepted, never required."""

    kind: str
    name: str
    api_group: str | None = Field(default=None, alias="apiGroup")


def quantity_backends_to_hub(backends: Iterable[QuantityBackend]) -> tuple[hub.Backend, ...]:
    return tuple(_quantity_backend_to_hub(b) for b in backends)


def _quantity_backend_to_hub(backend: QuantityBackend) -> hub.Backend:
    milli = to_milli(backend.weight)
    written = backend.weight
    return hub.backend(
        service=backend.service,
        weight_milli=milli,
        written=None if written == format_milli(milli) else written,
    )


def quantity_backends(backends: Iterable[hub.Backend]) -> list[QuantityBackend]:
    return [QuantityBackend(service=b.service, weight=quantity_of(b)) for b in backends]


def quantity_of(backend: hub.Backend) -> int | float | str:
    """The backend's v1alpha1 weight: as it was written, when the hub still says what was
    written (a hub built from data, or an edited annotation, may hold a spelling of another
    weight: the milli-units win), else the canonical quantity."""
    written = backend.weight_written
    if written is not None:
        try:
            if to_milli(written) == backend.weight_milli:
                return written
        except QuantityError:
            pass
    return format_milli(backend.weight_milli)


def backends_to_hub(backends: Iterable[Backend]) -> tuple[hub.Backend, ...]:
    return tuple(hub.backend(service=b.service, weight_milli=b.weight * 1000) for b in backends)


def integer_weights(milli: list[int]) -> list[int]:
    """Whole-number weights with the same ratios as `milli` (exact when all are whole units).

    Ratios of v1alpha1 quantities can need integers beyond what the integer versions hold
    (`MAX_WEIGHT`: `1P` next to `1m` is 10**18 : 1); those are scaled down to fit, keeping
    every positive weight positive, and the exact milli weights ride in the annotation."""
    unit = 1000 if all(m % 1000 == 0 for m in milli) else math.gcd(*milli)
    whole = [m // unit for m in milli] if unit else list(milli)
    top = max((abs(w) for w in whole), default=0)
    if top <= MAX_WEIGHT:
        return whole
    return [(1 if w > 0 else -1) * max(1, abs(w) * MAX_WEIGHT // top) if w else 0 for w in whole]


def int_backends(backends: tuple[hub.Backend, ...]) -> list[Backend]:
    weights = integer_weights([b.weight_milli for b in backends])
    return [Backend(service=b.service, weight=w) for b, w in zip(backends, weights, strict=True)]


def _describe_matches(_key: object, matches: tuple[hub.MatchRef, ...]) -> str:
    groups = ", ".join(f"{m.kind} {m.name}" for m in matches)
    return f"matches [{groups}] (only the requests they match are split)"


MATCHES = lossy.Narrowing(field="matches", part=None, describe=_describe_matches)
SPLIT_NARROWING = (MATCHES,)


def match_to_hub(match: MatchRef) -> hub.MatchRef:
    return _match_ref(kind=match.kind, name=match.name, api_group=match.api_group)


def match_ref(match: hub.MatchRef) -> MatchRef:
    return MatchRef(kind=match.kind, name=match.name, apiGroup=match.api_group)


def matches_to_hub(matches: Iterable[MatchRef] | None) -> tuple[hub.MatchRef, ...] | None:
    return None if matches is None else tuple(match_to_hub(m) for m in matches)


def match_refs(matches: tuple[hub.MatchRef, ...] | None) -> list[MatchRef] | None:
    return None if matches is None else [match_ref(m) for m in matches]
