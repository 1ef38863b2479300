"""What `smictl delete -f` reads of a manifest: each object's identity, never its schema.

kubectl deletes by identity (apiVersion, kind, metadata.name and namespace), and a manifest
cut down to that, or one whose spec smictl would refuse, must still remove its object. The
loader's rules for *what* an object is still apply (a served SMI kind or a context kind,
`kind: List` and `<Kind>List`, a name), with its codes and messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smi.apis import registry
from smi.errors import Diagnostic
from smi.loading import CONTEXT_KINDS, SMI_KIND_GROUPS, Source, typed_list
from smi.schema_errors import json_type
from smi.sources import Lines
from smi.store.base import CLUSTER_SCOPED_KINDS


@dataclass(frozen=True)
class Reference:
    """What `delete -f` reads of an object: who it is and where it is written. `raw` is the
    document as written; `namespace` is the one it is deleted from ("" when cluster-scoped)."""

    api_version: str
    kind: str
    name: str
    namespace: str
    raw: Mapping[str, Any]
    source: Source
    lines: Lines | None = field(default=None, compare=False, repr=False)


class IdentityReader:
    """The loader's rules for what an object is (apiVersion and kind, a served SMI kind or a
    context kind, `kind: List` and `<Kind>List`, metadata.name), without its schema: kubectl
    deletes by identity, and a manifest cut down to one must delete its object."""

    def __init__(self, filename: str, *, namespace: str) -> None:
        self.filename = filename
        self.namespace = namespace
        self.references: list[Reference] = []
        self.diagnostics: list[Diagnostic] = []

    def problem(
        self, code: str, message: str, *, path: str, lines: Lines | None, warning: bool = False
    ) -> None:
        line = lines.line_of(path) if lines is not None else None
        self.diagnostics.append(Diagnostic(code, message, path=path, file=self.filename, line=line,
                                           severity="warning" if warning else "error"))  # fmt: skip

    def document(self, value: Any, *, lines: Lines | None, index: int) -> None:
        if not isinstance(value, dict):
            what = json_type(value)
            self.problem("SMI1003", f"document is {what}, not an object", path="", lines=lines)
            return
        api_version, kind, items = value.get("apiVersion"), value.get("kind"), value.get("items")
        if isinstance(items, list) and (kind == "List" or typed_list(api_version, kind)):
            # `<Kind>List` items may leave out apiVersion and kind, which are the list's.
            typed = {} if kind == "List" else {"apiVersion": api_version, "kind": str(kind)[:-4]}
            for i, item in enumerate(items):
                sub = lines.sub(("items", i)) if lines is not None else None
                whole = {**typed, **item} if isinstance(item, dict) else item
                self.document(whole, lines=sub, index=index)
            return
        if not self._typed(api_version, kind, lines):
            return
        assert isinstance(api_version, str) and isinstance(kind, str)  # checked just above
        if not self._stored(api_version, kind, lines):
            return
        meta = value.get("metadata")
        name, written = self._identity(meta, lines)
        if name is None:
            return
        namespace = "" if kind in CLUSTER_SCOPED_KINDS else (written or self.namespace)
        source = Source(file=self.filename, line=getattr(lines, "line", None), index=index)
        self.references.append(Reference(api_version, kind, name, namespace, value, source, lines))

    def _typed(self, api_version: Any, kind: Any, lines: Lines | None) -> bool:
        ok = True
        for path, v, code in (("apiVersion", api_version, "SMI1004"), ("kind", kind, "SMI1005")):
            if v is None or v == "":
                self.problem(code, "required field missing", path=path, lines=lines)
                ok = False
            elif not isinstance(v, str):
                self.problem("SMI2003", f"must be a string, not {json_type(v)}", path=path,
                             lines=lines)  # fmt: skip
                ok = False
        return ok

    def _stored(self, api_version: str, kind: str, lines: Lines | None) -> bool:
        """Whether (apiVersion, kind) is one the store can hold; says why not."""
        if registry.is_smi_group(api_version):
            if registry.lookup(api_version, kind) is not None:
                return True
            kinds = registry.kinds_of(api_version)
            if kinds:
                self.problem("SMI1007", f"{api_version} has no kind {kind} (it defines "
                             f"{', '.join(kinds)})", path="kind", lines=lines)  # fmt: skip
            else:
                group = registry.supported_versions().get(api_version.partition("/")[0], {})
                served = sorted({v for versions in group.values() for v in versions})
                self.problem("SMI1006", f"{api_version} is not a served SMI version (served: "
                             f"{', '.join(served)})", path="apiVersion", lines=lines)  # fmt: skip
        elif kind in SMI_KIND_GROUPS:
            self.problem("SMI1011", f"{kind} is an SMI kind, but apiVersion {api_version!r} is "
                         f"not an SMI group (expected {SMI_KIND_GROUPS[kind]}/<version>)",
                         path="apiVersion", lines=lines)  # fmt: skip
        elif api_version in CONTEXT_KINDS.get(kind, ()):
            return True
        else:
            self.problem("SMI1008", f"skipped {api_version} {kind}: not an SMI resource or a "
                         "context object", path="", lines=lines, warning=True)  # fmt: skip
        return False

    def _identity(self, meta: Any, lines: Lines | None) -> tuple[str | None, str]:
        """(metadata.name, metadata.namespace as written); no name after a problem."""
        if not isinstance(meta, dict):
            if meta is None:
                self.problem("SMI1009", "metadata.name missing", path="metadata.name", lines=lines)
            else:
                self.problem("SMI2003", f"must be an object, not {json_type(meta)}",
                             path="metadata", lines=lines)  # fmt: skip
            return None, ""
        name, namespace = meta.get("name"), meta.get("namespace")
        for path, v in (("metadata.name", name), ("metadata.namespace", namespace)):
            if v is not None and v != "" and not isinstance(v, str):
                self.problem("SMI2003", f"must be a string, not {json_type(v)}", path=path,
                             lines=lines)  # fmt: skip
                return None, ""
        if not name:
            self.problem("SMI1009", "metadata.name missing", path="metadata.name", lines=lines)
            return None, ""
        return name, namespace or ""
