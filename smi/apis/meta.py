"""Kubernetes object metadata as the hubs hold it.

Wire models keep metadata with `extra="allow"` so that nothing a cluster writes (uid,
resourceVersion, managedFields, ...) is lost across a conversion; the hub keeps the same object.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Where a conversion keeps fields the target version cannot hold, so that converting back
# restores them (a JSON object keyed by hub field name).
LOSSY_ANNOTATION = "smictl.io/lossy-fields"


class ObjectMeta(BaseModel):
    """Metadata of a namespaced object. Hashes by identity (namespace, name, uid) because the
    free-form maps cannot be hashed; equality still compares every field."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    name: str = ""
    namespace: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels", "annotations", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        """`labels:` with no value is null, as Helm templates often leave it (`labels:
        {{- with ...}}`); kubectl and the API server read it as no labels, so an object they
        take is not refused here. Converted, it is written as absent, like `labels: {}`."""
        return {} if value is None else value

    def __hash__(self) -> int:
        return hash((self.namespace, self.name, getattr(self, "uid", None)))

    @property
    def key(self) -> str:
        """`namespace/name`, the way references and stores name objects."""
        return f"{self.namespace}/{self.name}"
