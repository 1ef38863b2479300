"""The control plane's state in one object: store, policies, CA, authenticator, metrics, and the
compiled view of the current store revision.

`ControlPlane.build(settings)` opens everything once per worker; the views reach it through
`current_plane()`. A `View` is everything derived from one store revision (the loaded resources,
the compiled MeshPolicy and its JSON, namespace labels for injection); it is rebuilt only when the
revision moves, by one thread while the others keep serving the previous view, so a request never
pays for a compile it does not need.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from flask import current_app

from smi.compiler.ir.model import Endpoint, MeshPolicy
from smi.errors import Diagnostic, SMIError
from smi.identity import Identity, IdentityError
from smi.loading import ContextObject, LoadResult, Resource, load_object
from smi.pki import CertificateAuthority, PKIError, not_after
from smi.policy.input import Inventory
from smi.store.base import Snapshot, Store
from webhook import logs
from webhook.auth import Authenticator
from webhook.metrics import Metrics
from webhook.settings import Settings

EXTENSION = "smictl"
T = TypeVar("T")


@dataclass(frozen=True)
class View:
    """Everything derived from one store revision."""

    revision: int
    snapshot: Snapshot
    resources: tuple[Resource, ...]
    context: tuple[ContextObject, ...]
    policy: MeshPolicy
    policy_json: bytes
    skipped: tuple[Diagnostic, ...] = ()
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    inventory: Inventory = field(default_factory=Inventory)

    @property
    def etag(self) -> str:
        return self.policy.hash


@dataclass
class ControlPlane:
    settings: Settings
    store: Store
    policies: Any
    metrics: Metrics
    ca: CertificateAuthority | None = None
    authenticator: Authenticator | None = None
    # The view cache: replaced whole, read without the lock (a reference read is atomic).
    _view: View | None = None
    _build_lock: threading.Lock = field(default_factory=threading.Lock)
    _broken: int = -1  # a revision whose compile failed; the previous view is served
    # Long polls that wait in a thread (gthread, the Flask test client, a LoopWorker past its
    # parking cap) hold it: at most half the threads of a worker may wait so. Polls parked on
    # the LoopWorker's loop (`webhook.mesh.LongPolls`) hold no thread and do not count here.
    long_polls: threading.BoundedSemaphore = field(init=False)

    # Values derived from one view on demand (the authz index for /v1/data): latest per name.
    _derived: dict[str, tuple[int, Any]] = field(default_factory=dict)
    # Endpoint leases: expired at most this often, and never in the first TTL after start-up,
    # so that proxies get a whole TTL to renew after a control-plane outage.
    _leases_checked: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.long_polls = threading.BoundedSemaphore(max(1, self.settings.threads // 2))
        self._leases_checked += self.settings.endpoint_ttl_seconds * 0.75

    @property
    def lease_check_interval(self) -> float:
        return self.settings.endpoint_ttl_seconds / 4

    def expire_endpoints(self, *, wait: bool = True) -> None:
        """Drop the endpoints whose proxies stopped renewing (killed, partitioned); cheap when
        called often: one clock read, and one SQLite read per `lease_check_interval`.

        With `wait` false (`view()`, which runs on the worker's event loop for reviews and
        policy GETs) the write happens only if the store's write lock is free at once; when it
        is not, or when this is a write's own admission check, nothing is expired and the
        next call (a request, or a waiting poll, which waits for the lock off the loop) tries
        again rather than a quarter TTL later."""
        now = time.monotonic()
        if now - self._leases_checked < self.lease_check_interval:
            return
        before = self.store.revision()
        after = self.store.expire_endpoints(
            renewed_before=time.time() - self.settings.endpoint_ttl_seconds, wait=wait
        )
        if after is None:
            return
        self._leases_checked = now
        if after != before:
            logs.emit(logs.SERVER, {"event": "endpoints_expired", "revision": after})

    def derived(self, name: str, build: Callable[[View], T]) -> T:
        """`build(view)` for the current view, computed once per revision."""
        view = self.view()
        hit = self._derived.get(name)
        if hit is not None and hit[0] == view.revision:
            return cast(T, hit[1])
        value = build(view)
        self._derived[name] = (view.revision, value)
        return value

    def view(self) -> View:
        """The view of the current revision (compiled on first use after a change).

        If a revision fails to compile (a bug, not bad input: the compiler skips what it
        cannot use), the last good view keeps being served and the failure is logged once;
        the next revision is tried afresh. With no good view yet, the error propagates."""
        if self.store.writable:
            self.expire_endpoints(wait=False)
        revision = self.store.revision()
        current = self._view
        if current is not None and revision in {current.revision, self._broken}:
            return current
        with self._build_lock:
            current = self._view
            revision = self.store.revision()
            if current is not None and revision in {current.revision, self._broken}:
                return current
            try:
                current = self._build()
            except Exception:
                logging.getLogger(logs.SERVER).exception(
                    "policy compile failed", extra={"fields": {
                        "event": "policy_compile_failed", "revision": revision}},
                )  # fmt: skip
                if self._view is None:
                    raise
                self._broken = revision
                return self._view
            self._view = current
        return current

    def latest_view(self) -> View:
        """The last view built, without looking at the store or compiling: for the event loop,
        which must not block. Falls back to `view()` only before the first compile."""
        current = self._view
        return current if current is not None else self.view()

    def ready(self) -> bool:
        return self._view is not None and self.store.ready()

    def wait_for_policy(self, etag: str, *, timeout: float) -> View:
        """Block until the served policy's hash differs from `etag`, or `timeout`; the view
        at return (compare its etag to know which)."""
        deadline = time.monotonic() + timeout
        view = self.view()
        while view.etag == etag:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # Wake at least once per lease check: a waiting poll is often the only request,
            # and it runs in a thread (the watcher, a pool thread), where the expiry may wait
            # for the write lock that `view()` on the event loop does not wait for.
            self.store.wait_for_change(view.revision, timeout=min(left, self.lease_check_interval))
            if self.store.writable:
                self.expire_endpoints()
            view = self.view()
        return view

    def _build(self) -> View:
        snap = self.store.snapshot()
        loaded = load_snapshot(snap)
        from smi.compiler.build import compile as compile_policy

        result = compile_policy(
            loaded.resources,
            context=loaded.context,
            mode=self.settings.mode,
            trust_domain=self.settings.trust_domain,
            revision=snap.revision,
            endpoints=endpoints_of(snap, trust_domain=self.settings.trust_domain),
        )
        policy = result.policy.with_revision(snap.revision)
        inventory = Inventory.of(loaded.resources, loaded.context)
        # Index the set for cross-resource validation now, off the request path, rather than
        # in the first review after each revision.
        _ = inventory.validation_index
        self.metrics.policy_revision.set(snap.revision)
        logs.emit(
            logs.SERVER,
            {
                "event": "policy_compiled",
                "revision": snap.revision,
                "hash": policy.hash,
                "resources": len(loaded.resources),
                "skipped": len(result.skipped),
            },
        )
        return View(
            revision=snap.revision,
            snapshot=snap,
            resources=tuple(loaded.resources),
            context=tuple(loaded.context),
            policy=policy,
            policy_json=policy.to_json().encode(),
            skipped=tuple(result.skipped),
            namespace_labels=namespace_labels(loaded.context),
            inventory=inventory,
        )


def load_snapshot(snap: Snapshot) -> LoadResult:
    """Every stored document as resources and context. A stored document that no longer loads
    (written by another smictl version) is left out and logged, not fatal."""
    out = LoadResult()
    for obj in snap.objects:
        loaded = load_object(
            obj.body, filename=f"store:{obj.key}", default_namespace=obj.key.namespace or "default"
        )
        if not loaded.ok:
            logs.emit(
                logs.SERVER,
                {
                    "event": "stored_object_skipped",
                    "object": str(obj.key),
                    "problems": [d.format() for d in loaded.diagnostics if d.is_error],
                },
                level=logging.WARNING,
            )
            continue
        out.extend(loaded)
    return out


def endpoints_of(snap: Snapshot, *, trust_domain: str) -> dict[str, list[Endpoint]]:
    """The compiler's endpoints from the store's records. Registered endpoints carry SPIFFE
    IDs; the Kubernetes store's carry `ns/sa` (it knows no trust domain), qualified here."""
    out: dict[str, list[Endpoint]] = {}
    for rec in snap.endpoints:
        try:
            identity = Identity.parse(rec.identity, trust_domain=trust_domain).spiffe_id
        except IdentityError:
            continue
        for service in rec.services:
            out.setdefault(service, []).append(
                Endpoint(address=rec.address, port=rec.port, identity=identity)
            )
    return out


def namespace_labels(
    context: tuple[ContextObject, ...] | list[ContextObject],
) -> dict[str, Mapping[str, str]]:
    out: dict[str, Mapping[str, str]] = {}
    for obj in context:
        if obj.kind == "Namespace":
            labels = (obj.raw.get("metadata") or {}).get("labels") or {}
            out[obj.name] = {str(k): str(v) for k, v in labels.items()}
    return out


def load_ca(settings: Settings) -> CertificateAuthority | None:
    """The mesh CA from its files, or None when none is configured (no certificate signing)."""
    if settings.mesh_ca_cert_file is None or settings.mesh_ca_key_file is None:
        return None
    try:
        return CertificateAuthority.load(
            settings.mesh_ca_cert_file.read_bytes(), settings.mesh_ca_key_file.read_bytes()
        )
    except (OSError, PKIError) as exc:
        raise SMIError(
            Diagnostic(
                code="SMI7003",
                message=f"mesh CA {settings.mesh_ca_cert_file}: {exc}",
                file=str(settings.mesh_ca_cert_file),
            )
        ) from exc


def record_expiry(metrics: Metrics, *, name: str, cert_pem: bytes) -> None:
    try:
        metrics.certificate_expiry.labels(certificate=name).set(not_after(cert_pem).timestamp())
    except PKIError:
        return


def current_plane() -> ControlPlane:
    plane: ControlPlane = current_app.extensions[EXTENSION]
    return plane
