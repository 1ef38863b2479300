"""Hub objects assembled from values a wire model has validated already, without a second
validation.

Reading a document validates it against its version's wire model (pydantic, strict); the
converters then assemble the hub object from those values, and the hub's constructor would
check every field again: measured on 10,000 loaded objects, 40% of `registry.parse` (about
2 µs per hub object once the objects no longer fit the caches, several per document).

`hub_builder(cls, defaulted=...)` gives a function that builds the instance the constructor
gives for the same arguments: same field values, field order, `model_fields_set`, equality,
hash and repr. Its callers pass every field, in the model's order, with values that already
have the field types (tuples for tuple fields, hub instances for nested models); `defaulted`
names the fields the constructor call would have left to their defaults, so that
`model_fields_set` is what it would be. A property test holds every builder to that, and
`hub_builder` refuses models with validators, default factories, extra fields or post-init
hooks, for which skipping the constructor would change the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_set = object.__setattr__


def hub_builder(cls: type[M], *, defaulted: Iterable[str] = ()) -> Callable[..., M]:
    """A builder of `cls` from every field's value (keyword arguments, in field order)."""
    _require_plain(cls)
    given = frozenset(cls.model_fields) - frozenset(defaulted)
    new = cls.__new__

    def build(**fields: Any) -> M:
        obj = new(cls)
        _set(obj, "__dict__", fields)
        _set(obj, "__pydantic_fields_set__", set(given))
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj

    build.__name__ = build.__qualname__ = f"build_{cls.__name__}"
    return build


def _require_plain(cls: type[BaseModel]) -> None:
    decorators = cls.__pydantic_decorators__
    if (
        cls.model_config.get("extra") == "allow"
        or cls.__pydantic_post_init__ is not None
        or cls.__private_attributes__
        or decorators.field_validators
        or decorators.model_validators
        or decorators.validators
        or decorators.root_validators
        or any(f.default_factory is not None for f in cls.model_fields.values())
    ):
        raise TypeError(f"{cls.__name__} must be built by its constructor")
