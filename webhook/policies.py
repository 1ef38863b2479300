"""The webhook's side of the admission chain: load the PolicySet, build AdmissionRequests for
local writes, call `smi.policy.admission.admit` — the one validation path — and turn refusals
into one `Denied` carrying every reason.

`/validate` and `/apis/.../apply` both end in `admit`; the only difference is where the request
and the inventory come from (the API server and the store's view, or the apply batch laid over
the store snapshot it will land on).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smi.apis.meta import LOSSY_ANNOTATION
from smi.loading import ContextObject, Resource, load_object
from smi.policy.admission import bounded_lines, problem_lines
from smi.policy.input import Inventory
from smi.policy.policyset import PolicySet, read_parameters
from smi.store.base import Change, Snapshot
from webhook.plane import load_snapshot

if TYPE_CHECKING:
    from webhook.plane import ControlPlane
    from webhook.settings import Settings


def load_policies(
    dirs: Sequence[Path],
    *,
    include_shipped: bool = True,
    parameters: Mapping[str, Any] | None = None,
) -> PolicySet:
    """The shipped policies (unless turned off) plus every directory given; raises
    PolicyError with file:line."""
    return PolicySet.load(list(dirs), include_shipped=include_shipped, parameters=parameters)


def policies_of(settings: Settings) -> PolicySet:
    """The policy set the settings select, with `data.parameters` read from
    SMI_WEBHOOK_PARAMETERS by `smictl admit --parameters`'s own reader (same format, same
    one-line errors), so a set gated in CI decides the same way here. Raises PolicyError."""
    parameters = read_parameters(settings.parameters) if settings.parameters is not None else {}
    return load_policies(
        settings.policies, include_shipped=settings.shipped_policies, parameters=parameters
    )


def check_policies(settings: Settings) -> None:
    """Load the policy set once and let it go: `serve`'s preflight, so that a policy that does
    not compile (or a bad parameters file) is one `file:line: ... (SMI5001)` line before
    gunicorn starts, not a traceback in every worker. Raises PolicyError."""
    engine = policies_of(settings).engine
    close = getattr(engine, "close", None)  # the evaluator child; `Engine` does not promise it
    if close is not None:
        close()


class Denied(Exception):
    """An apply or delete refused by admission; nothing was written."""

    def __init__(self, denials: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(denials)} object(s) denied")
        self.denials = denials

    @property
    def status(self) -> int:
        codes = {int(d.get("code") or 403) for d in self.denials}
        return 422 if 422 in codes else max(codes)

    def summary(self) -> str:
        return f"{len(self.denials)} of the objects were denied by admission"


def admit(plane: ControlPlane, request: Mapping[str, Any], inventory: Inventory) -> Any:
    from smi.policy.admission import admit as admit_request

    return admit_request(dict(request), plane.policies, inventory=inventory, strict=False)


def inventory_of(resources: Sequence[Resource], context: Sequence[ContextObject]) -> Inventory:
    return Inventory.of(resources, context)


def admit_batch(
    plane: ControlPlane,
    snap: Snapshot,
    changes: Sequence[Change],
    *,
    dry_run: bool,
    username: str,
) -> list[dict[str, Any]]:
    """Admit every change of one write against `snap` with the batch laid over it.

    Returns the warnings; raises Denied with every denial when any change is refused.
    """
    inventory = _batch_inventory(plane, snap, changes)
    denials: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    for change in changes:
        if change.unchanged:
            continue
        request = change_request(change, dry_run=dry_run, username=username)
        result = admit(plane, request, inventory)
        if not result.allowed and metadata_only(request):
            # (as `/validate` does: `smictl apply` of a relabelled object that predates a
            # policy was refused where the webhook admits it with a warning)
            result = ratchet(plane, request, result, inventory)
        warnings.extend(_warnings(change, result))
        if not result.allowed:
            denials.append(_denial(change, result))
    if denials:
        raise Denied(denials)
    return warnings


def _warnings(change: Change, result: Any) -> list[dict[str, Any]]:
    """Located warning diagnostics; the plain warning lines only when there are none."""
    diags = [{**d.to_json(), "index": change.index} for d in result.diagnostics if not d.is_error]
    if diags:
        return diags
    return [
        {"code": "SMI7002", "message": w, "severity": "warning", "index": change.index,
         "object": str(change.key), "path": ""}
        for w in result.warnings
    ]  # fmt: skip


def _denial(change: Change, result: Any) -> dict[str, Any]:
    diagnostics = [d.to_json() for d in result.diagnostics if d.is_error]
    if not diagnostics:
        diagnostics = [
            {
                "code": "SMI5005",
                "message": m,
                "severity": "error",
                "path": "",
                "object": str(change.key),
            }
            for m in result.messages
        ]
    return {
        "index": change.index,
        "object": str(change.key),
        "operation": change.operation,
        "code": result.code,
        "messages": list(result.messages),
        "diagnostics": diagnostics,
    }


def metadata_only(request: Mapping[str, Any]) -> bool:
    """Whether an UPDATE changes nothing but the object's metadata (labels, annotations,
    owner references, finalizers, and what the API server keeps there). The lossy-fields
    annotation is not metadata: it carries what an older version cannot hold (UDPRoute rules,
    IdentityBinding sources), which the compiler enforces, so editing it is a spec change."""
    old, new = request.get("oldObject"), request.get("object")
    if request.get("operation") != "UPDATE":
        return False
    if not isinstance(old, dict) or not isinstance(new, dict):
        return False
    return _meaning(old) == _meaning(new)


def _meaning(obj: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """Everything but metadata, and the lossy-fields annotation."""
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    lossy = annotations.get(LOSSY_ANNOTATION) if isinstance(annotations, Mapping) else None
    return {k: v for k, v in obj.items() if k != "metadata"}, lossy


def ratchet(
    plane: ControlPlane, request: Mapping[str, Any], result: Any, inventory: Inventory
) -> Any:
    """Validation ratcheting, as Kubernetes does for CRD schemas: on a metadata-only UPDATE
    the problems the stored object already had are warnings, so that an object that predates
    a policy or a check can still be relabelled, annotated, owned or have its finalizers
    removed. A problem the update brings is still refused, alone. (An object that was already
    invalid is never shown to the policies, before or after.)"""
    before = admit(plane, {**request, "object": request["oldObject"]}, inventory)
    known = set() if before.allowed else set(problem_lines(before))
    lines = problem_lines(result)
    kept = [m for m in lines if m in known]
    if not kept:
        return result
    added = [m for m in lines if m not in known]
    warnings = (*result.warnings, *(f"{_PREEXISTING}{m}" for m in kept))
    if added:
        return replace(result, messages=bounded_lines(added), warnings=warnings)
    return replace(result, allowed=True, code=200, messages=(), warnings=warnings)


_PREEXISTING = "pre-existing, not enforced on a metadata-only update: "


def change_request(change: Change, *, dry_run: bool, username: str) -> dict[str, Any]:
    """The AdmissionRequest a local write makes, shaped like the API server's."""
    body = change.new if change.new is not None else (change.old.body if change.old else {})
    api_version = str(body.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    kind = change.key.kind
    return {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": _plural(kind)},
        "namespace": change.key.namespace,
        "name": change.key.name,
        "operation": change.operation,
        "userInfo": {"username": username, "groups": ["smictl:local"]},
        "object": dict(change.new) if change.new is not None else None,
        "oldObject": dict(change.old.body) if change.old is not None else None,
        "dryRun": dry_run,
    }


def _plural(kind: str) -> str:
    lower = kind.lower()
    return lower + ("es" if lower.endswith(("s", "x")) else "s")


def _batch_inventory(plane: ControlPlane, snap: Snapshot, changes: Sequence[Change]) -> Inventory:
    """The store as it will be after the write: the snapshot with the batch laid over it.
    The current view already holds the snapshot loaded when the revisions agree."""
    touched = {_key(c.key.kind, c.key.namespace, c.key.name) for c in changes}
    view = plane.view()
    if view.revision == snap.revision:
        base_resources, base_context = view.resources, view.context
    else:
        loaded = load_snapshot(snap)
        base_resources, base_context = tuple(loaded.resources), tuple(loaded.context)
    resources = [r for r in base_resources if _key(r.kind, r.namespace, r.name) not in touched]
    context = [c for c in base_context if _key(c.kind, c.namespace, c.name) not in touched]
    for c in changes:
        if c.new is None:
            continue
        one = load_object(c.new, default_namespace=c.key.namespace or "default")
        resources.extend(one.resources)
        context.extend(one.context)
    return Inventory.of(resources, context)


def _key(kind: str, namespace: str, name: str) -> tuple[str, str, str]:
    return (kind, namespace, name)
