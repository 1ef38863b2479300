"""The one store interface both backends implement, and the values that cross it.

A store holds Kubernetes-shaped documents (SMI resources and the context objects the compiler
reads: Services, ServiceAccounts, Namespaces) plus, in local mode, the endpoints that proxies
register. Every change bumps one monotonically increasing `revision`; the control plane compiles
the MeshPolicy of a revision and long-polls on it.

Two backends (DESIGN.md §2): `SQLiteStore` (local mode, writable, WAL, shared by every gunicorn
worker through the database file) and `KubernetesStore` (a list+watch cache of the API server,
read-only here: writes go through `kubectl` and the admission webhook).

Writes are all-or-nothing. `apply` and `delete` take a `check` callback that runs inside the
write transaction with the snapshot it applies to, so that admission sees exactly the state the
change lands on; if `check` raises, nothing is written.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from smi.errors import Diagnostic, SMIError

Operation = Literal["CREATE", "UPDATE", "DELETE"]
Action = Literal["created", "configured", "unchanged", "deleted"]

# Kinds without a namespace. Everything else defaults to "default" when metadata leaves it out.
CLUSTER_SCOPED_KINDS = frozenset({"Namespace"})


class StoreError(SMIError):
    """A store operation failed: a bad document, a missing object, or a read-only backend."""


def store_error(code: str, message: str, *, path: str = "") -> StoreError:
    return StoreError(Diagnostic(code=code, message=message, path=path))


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    """What names one object: API group ("" for core), kind, namespace ("" if cluster-scoped)."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return (
            f"{self.namespace}/{self.kind}/{self.name}"
            if self.namespace
            else (f"{self.kind}/{self.name}")
        )

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> ObjectKey:
        """The key of a document; raises StoreError when it lacks apiVersion, kind or name."""
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        meta = doc.get("metadata")
        if not isinstance(api_version, str) or not api_version:
            raise store_error("SMI1004", "apiVersion missing", path="apiVersion")
        if not isinstance(kind, str) or not kind:
            raise store_error("SMI1005", "kind missing", path="kind")
        if (
            not isinstance(meta, Mapping)
            or not isinstance(meta.get("name"), str)
            or not (meta.get("name"))
        ):
            raise store_error("SMI1009", "metadata.name missing", path="metadata.name")
        group = api_version.rpartition("/")[0]
        if group == "extensions" and kind in _MOVED_TO_APPS:
            group = "apps"
        namespace = "" if kind in CLUSTER_SCOPED_KINDS else str(meta.get("namespace") or "default")
        return cls(group=group, kind=kind, namespace=namespace, name=str(meta["name"]))


# Kinds `extensions/v1beta1` served before `apps`: one object in either group, as the API server
# has it (an `extensions/v1beta1` Deployment and an `apps/v1` one of a name were stored as two,
# `get` listed both, and a dump of the store failed `validate`, SMI3008).
_MOVED_TO_APPS = frozenset({"Deployment", "DaemonSet", "ReplicaSet"})


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One document as stored, with the revision of the change that last wrote it."""

    key: ObjectKey
    body: Mapping[str, Any]
    revision: int

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))


@dataclass(frozen=True, slots=True, order=True)
class EndpointRecord:
    """A workload's inbound address, registered by its proxy (local mode, DESIGN.md §5)."""

    address: str
    port: int
    identity: str
    services: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything in the store at one revision."""

    revision: int
    objects: tuple[StoredObject, ...] = ()
    endpoints: tuple[EndpointRecord, ...] = ()

    def get(self, key: ObjectKey) -> StoredObject | None:
        for obj in self.objects:
            if obj.key == key:
                return obj
        return None


@dataclass(frozen=True, slots=True)
class Change:
    """One document of a write: what happens to it and what it replaces."""

    operation: Operation
    key: ObjectKey
    new: Mapping[str, Any] | None
    old: StoredObject | None
    index: int = 0

    @property
    def unchanged(self) -> bool:
        """An update that writes the stored document again: the store reports it `unchanged`
        without a new revision, admission skips it, and it cannot undo anyone's update."""
        if self.old is None or self.new is None:
            return False
        # As JSON, not as dicts: `True == 1` and `1 == 1.0` in Python, not in the document.
        return canonical_json(self.old.body) == canonical_json(self.new)


def canonical_json(doc: Mapping[str, Any]) -> str:
    """One text per document value: keys sorted, no spaces (what the store writes)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of a write: the revision it produced (unchanged when nothing changed)."""

    revision: int
    results: tuple[tuple[ObjectKey, Action], ...] = ()
    dry_run: bool = False
    changed: bool = field(default=False)


Check = Callable[[Snapshot, Sequence[Change]], None]


class Store(abc.ABC):
    """The interface of both backends. Readers are safe from any thread."""

    writable: bool = False

    @abc.abstractmethod
    def revision(self) -> int:
        """The current revision; cheap enough to call on every request."""

    @abc.abstractmethod
    def snapshot(self) -> Snapshot:
        """Every object and endpoint at one consistent revision."""

    @abc.abstractmethod
    def wait_for_change(self, revision: int, *, timeout: float) -> int:
        """Block until the revision exceeds `revision` or `timeout` passes; return it."""

    def ready(self) -> bool:
        """True once the store holds a consistent view (the Kubernetes cache has listed)."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections and threads."""

    def apply(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        check: Check | None = None,
        dry_run: bool = False,
    ) -> Outcome:
        raise self._read_only()

    def delete(
        self,
        keys: Sequence[ObjectKey],
        *,
        check: Check | None = None,
        dry_run: bool = False,
        ignore_missing: bool = False,
    ) -> Outcome:
        raise self._read_only()

    def register_endpoint(self, record: EndpointRecord, *, now: float | None = None) -> int:
        """Store `record`, or renew its lease if it is stored as it is (no new revision)."""
        raise self._read_only()

    def expire_endpoints(self, *, renewed_before: float, wait: bool = True) -> int | None:
        """Drop endpoints whose lease was last renewed before `renewed_before` (wall-clock
        seconds); the revision, new if any went. Stores without registrations have none.

        None when nothing could be expired now and the caller should ask again: called inside
        a write of the same thread (a write's `check`: writes do not nest), or, with `wait`
        false, while another write holds the lock (an event loop must not wait for it)."""
        return self.revision()

    def deregister_endpoint(self, *, address: str, port: int, identity: str) -> int:
        raise self._read_only()

    def _read_only(self) -> StoreError:
        return store_error(
            "SMI7006",
            f"the {type(self).__name__} is read-only: change resources through the Kubernetes "
            "API (kubectl apply), which calls the admission webhook",
        )
