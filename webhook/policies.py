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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smi.loading import ContextObject, Resource, load_object
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
        result = admit(plane, change_request(change, dry_run=dry_run, username=username), inventory)
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
