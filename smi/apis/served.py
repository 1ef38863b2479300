"""What one served (group, version, kind) is, and the errors a conversion can end in.

Kept apart from `smi.apis.registry` so that the version modules can describe themselves
(`SERVED`) without importing the registry that imports them. `smi.apis` must not import
`smi.errors` (import-linter), so conversions fail with these `ValueError`s and the layer above
(`smi.conversion`, the loader, the webhook) maps them to its own codes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Served:
    """One kind in one version of one SMI group, with its wire model and hub converters."""

    group: str
    version: str
    kind: str
    wire: type[BaseModel]
    to_hub: Callable[[Any], Any]  # wire instance -> hub object
    from_hub: Callable[[Any], Any]  # hub object -> wire instance
    flat: bool  # fields at the object root instead of under `spec`
    draft: bool = False  # access v1alpha4: never released

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


class ConversionNotPossible(ValueError):
    """An object cannot be expressed in the target version (one-line reason in `str()`).

    Raised as is when the object holds something the target version has no place for and that
    an annotation cannot honestly carry (an IdentityBinding subject below access v1alpha4).
    """


class UnknownTarget(ConversionNotPossible):
    """The target apiVersion is not a served SMI version."""


class WrongGroup(ConversionNotPossible):
    """The target version belongs to another API group than the object."""


class KindNotInTarget(ConversionNotPossible):
    """The target version does not define the object's kind."""


class LossyAnnotationCorrupt(ConversionNotPossible):
    """The lossy-fields annotation is not valid for the object's kind."""
