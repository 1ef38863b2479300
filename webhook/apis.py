"""The local store API behind `smictl apply`, `get` and `delete` (local mode only).

    POST /apis/smictl.io/v1/apply    {"items": [object...], "dryRun": false}
    POST /apis/smictl.io/v1/delete   {"items": [{"kind", "name", "namespace"?, "apiVersion"?}],
                                      "ignoreNotFound": false, "dryRun": false}
    GET  /apis/smictl.io/v1/objects?kind=K&namespace=NS&name=N   (each filter optional)

A write is all-or-nothing: every object passes the same admission chain as `/validate`
(`webhook.policies.admit_change`) inside the store's write transaction, against the state it
lands on plus the rest of the batch; one denial refuses the whole batch with every reason
(403 for a policy denial, 422 when an object is invalid) and nothing changes.

Before admission, each object must be one the store can key and `get` can show: a string
DNS-1123 name and namespace, an SMI kind or a context kind, not twice in one batch (422 with
the index and field of every problem, so the CLI can point at file:line). An object carrying
`metadata.resourceVersion` (as `smictl get -o yaml` prints it) is applied only if it is still
the stored revision of that object (409 otherwise: someone changed it since it was read); the
field itself is never stored, so re-applying what `get` printed is `unchanged`.

Who may call it: only the holder of the admin token (`Authorization: Bearer <token>`, the file
`Settings.admin_token_file` names, read once when the app is built). Anything else is 401 with
`WWW-Authenticate: Bearer` before the body is read; with no token configured every request is.
This API rewrites the mesh's authorization, so it must not be open to whoever can reach the
port (docs/control-plane.md, "Who may use the local store API"). Every apply and delete, and
every refused request, is one `smictl.decision` line (never with the token) and is counted in
`smictl_local_api_requests_total`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, jsonify, request
from prometheus_client import CollectorRegistry, Counter

from smi.errors import Diagnostic, SMIError
from smi.loading import CONTEXT_KINDS, SMI_KIND_GROUPS
from smi.store.base import (
    CLUSTER_SCOPED_KINDS,
    Change,
    ObjectKey,
    Outcome,
    Snapshot,
    StoreError,
    canonical_json,
)
from smi.validation.names import check_label, check_subdomain
from webhook import logs
from webhook.auth import bearer_token
from webhook.client import read_admin_token
from webhook.plane import current_plane
from webhook.policies import Denied, admit_batch
from webhook.reviews import BadReview, read_json

bp = Blueprint("apis", __name__, url_prefix="/apis/smictl.io/v1")
# The admission user of local writes (what Rego policies see as userInfo.username).
LOCAL_USER = "smictl:local-apply"
# Who the decision log names: the holder of the admin token, or a caller without it.
ADMIN = "local-admin"
ANONYMOUS = "anonymous"
EXTENSION = "smictl.apis"
# The `operation` label: one per view, so a client cannot grow the label set.
OPERATIONS = {"apis.apply": "apply", "apis.delete": "delete", "apis.objects": "list"}


@dataclass(frozen=True, slots=True)
class LocalAdmin:
    """The local store API's one credential and its bookkeeping. Only the token's SHA-256 is
    kept: comparing digests takes the same time whatever the length or content sent."""

    digest: bytes | None  # None: no admin token configured; every request is refused
    requests: Counter

    @classmethod
    def load(cls, path: Path | None, *, registry: CollectorRegistry | None) -> LocalAdmin:
        """Read the token at `path` (SMIError, SMI7009, when it cannot be read: the worker
        stops with one line; `serve` checked it before, so that is a file changed since)."""
        digest = None
        if path is not None:
            try:
                digest = _digest(read_admin_token(path))
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                problem = Diagnostic("SMI7009", f"{path}: {reason}", path="--admin-token-file")
                raise SMIError(problem) from exc
        requests = Counter(
            "smictl_local_api_requests_total",
            "Requests to the local store API (local mode), by operation and result.",
            ["operation", "result"],
            registry=registry,
        )
        return cls(digest=digest, requests=requests)

    def refusal(self, header: str) -> str | None:
        """Why `header` (the Authorization value) does not carry the admin token, or None."""
        if self.digest is None:
            return "this control plane has no admin token configured (--admin-token-file)"
        token = bearer_token(header)
        if token is None:
            return "missing `Authorization: Bearer <admin token>`"
        if not hmac.compare_digest(_digest(token), self.digest):
            return "the bearer token is not this control plane's admin token"
        return None


def _error_of(response: Response) -> str:
    """The one-line `error` of a refusal this API (or the app's error handlers) answered."""
    body = response.get_json(silent=True) if response.is_json else None
    return str(body.get("error") or "") if isinstance(body, dict) else ""


def _digest(token: str) -> bytes:
    # A header is latin-1 text; "replace" keeps any other character from raising, and no
    # replaced character matches a token (printable ASCII).
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


def install(app: Flask, *, token_file: Path | None, registry: CollectorRegistry | None) -> None:
    """Serve this API on `app` (local mode), guarded by the admin token in `token_file`."""
    admin = LocalAdmin.load(token_file, registry=registry)
    if admin.digest is None:
        logs.emit(
            logs.SERVER,
            {"event": "local_api_closed", "reason": "no admin token configured: every "
             "/apis request is refused (SMI_WEBHOOK_ADMIN_TOKEN_FILE)"},
            level=logging.WARNING,
        )  # fmt: skip
    app.extensions[EXTENSION] = admin
    app.register_blueprint(bp)


@bp.before_request
def _authenticate() -> tuple[Response, int] | None:
    """401 for a caller without the admin token, before anything of its request is read."""
    admin: LocalAdmin = current_app.extensions[EXTENSION]
    reason = admin.refusal(request.headers.get("Authorization", ""))
    if reason is None:
        g.apis_user = ADMIN
        return None
    response = jsonify(error=reason, code=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="smictl"'
    g.apis_refusal = reason
    return response, 401


@bp.after_request
def _audit(response: Response) -> Response:
    """Count every request and log every write and every refusal: the audit trail of who
    changed the mesh's authorization, and who tried."""
    admin: LocalAdmin = current_app.extensions[EXTENSION]
    operation = OPERATIONS.get(request.endpoint or "", "other")
    status = response.status_code
    result = "unauthenticated" if status == 401 else "allowed" if status == 200 else "refused"
    admin.requests.labels(operation=operation, result=result).inc()
    if operation == "list" and status == 200:
        return response  # a read: the access log has it
    fields: dict[str, Any] = {
        "api": "local-store",
        "operation": operation,
        "user": g.get("apis_user", ANONYMOUS),
        "remote": request.remote_addr,
        "decision": result,
        "status": status,
        "dryRun": g.get("apis_dry_run", False),
        "objects": [str(k) for k in g.get("apis_objects", ())],
    }
    outcome: Outcome | None = g.get("apis_outcome")
    if outcome is not None and status == 200:
        fields["revision"] = outcome.revision
        fields["results"] = [{"object": str(k), "action": a} for k, a in outcome.results]
    else:
        fields["messages"] = [g.get("apis_refusal") or _error_of(response)]
    logs.emit(logs.DECISION, fields)
    return response


class Refused(Exception):
    """A write refused before anything changed, with every reason tied to its object's index."""

    def __init__(self, error: str, denials: list[dict[str, Any]], *, status: int) -> None:
        super().__init__(error)
        self.error, self.denials, self.status = error, denials, status


@bp.post("/apply")
def apply() -> tuple[Response, int]:
    plane = current_plane()
    body = _body(plane.settings.max_review_bytes)
    items = body.get("items")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        abort(400, "items: expected a non-empty list of objects")
    dry_run = g.apis_dry_run = _flag(body, "dryRun")
    keys = g.apis_objects = [_key(doc) for doc in items]
    warnings: list[dict[str, Any]] = []
    try:
        docs, expected = prepare(items, keys)
    except Refused as exc:
        return jsonify(error=exc.error, denials=exc.denials, warnings=warnings), exc.status

    def check(snap: Snapshot, changes: Sequence[Change]) -> None:
        check_versions(snap, changes, expected)
        warnings.extend(admit_batch(plane, snap, changes, dry_run=dry_run, username=LOCAL_USER))

    return _write(lambda: plane.store.apply(docs, check=check, dry_run=dry_run), warnings)


@bp.post("/delete")
def delete() -> tuple[Response, int]:
    plane = current_plane()
    body = _body(plane.settings.max_review_bytes)
    items = body.get("items")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        abort(400, "items: expected a non-empty list of {kind, name, namespace} references")
    snap = plane.store.snapshot()
    keys = g.apis_objects = [_resolve(ref, snap) for ref in items]
    dry_run, ignore_missing = _flag(body, "dryRun"), _flag(body, "ignoreNotFound")
    g.apis_dry_run = dry_run
    warnings: list[dict[str, Any]] = []

    def check(snap: Snapshot, changes: Sequence[Change]) -> None:
        warnings.extend(admit_batch(plane, snap, changes, dry_run=dry_run, username=LOCAL_USER))

    return _write(
        lambda: plane.store.delete(
            keys, check=check, dry_run=dry_run, ignore_missing=ignore_missing
        ),
        warnings,
        keys=keys,
    )


@bp.get("/objects")
def objects() -> Response:
    plane = current_plane()
    kind, ns, name = (request.args.get(k, "") for k in ("kind", "namespace", "name"))
    snap = plane.store.snapshot()
    items = [
        {
            **dict(o.body),
            "metadata": {**dict(o.body.get("metadata") or {}), "resourceVersion": str(o.revision)},
        }
        for o in snap.objects
        if (not kind or o.key.kind.lower() == kind.lower())
        and (not ns or o.key.namespace == ns)
        and (not name or o.key.name == name)
    ]
    return jsonify(revision=snap.revision, items=items)


def prepare(
    items: Sequence[Mapping[str, Any]], keys: Sequence[ObjectKey]
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The documents as stored, and the resourceVersion each expects (by index), or Refused
    (422) with every object the store cannot take: a name that is not a string would be
    stored under its Python repr, a kind nobody serves could never be listed or deleted, and a
    key given twice with different content would leave which one wins to chance. Identical
    copies (`-f dir` holding one manifest twice) are one object: validation warns (SMI3008),
    and the store keeps one."""
    docs: list[dict[str, Any]] = []
    expected: dict[int, str] = {}
    denials: list[dict[str, Any]] = []
    seen: dict[ObjectKey, str] = {}
    for index, (doc, key) in enumerate(zip(items, keys, strict=True)):
        problems = _problems(doc)
        stored, version = normalise(doc) if not problems else (dict(doc), None)
        if not problems and seen.setdefault(key, canonical_json(stored)) != canonical_json(stored):
            problems = [Diagnostic("SMI2007", f"{key} appears twice in one apply, with "
                                   "different content", path="metadata.name")]  # fmt: skip
        if problems:
            denials.append(_refusal(index, str(key), problems, code=422))
            continue
        docs.append(stored)
        if version is not None:
            expected[index] = version
    if denials:
        raise Refused(f"{len(denials)} of the objects are invalid", denials, status=422)
    return docs, expected


def _key(doc: Mapping[str, Any]) -> ObjectKey:
    """The store's key of `doc`; 400 when it has none (the CLI's loader never sends such)."""
    try:
        return ObjectKey.of(doc)
    except StoreError as exc:
        abort(400, exc.diagnostics[0].message)


def _problems(doc: Mapping[str, Any]) -> list[Diagnostic]:
    """Why the store cannot take `doc`, which has a key (nothing when it can)."""
    api_version, kind, meta = doc["apiVersion"], doc["kind"], doc["metadata"]
    if kind not in SMI_KIND_GROUPS and api_version not in CONTEXT_KINDS.get(kind, ()):
        served = ", ".join(sorted(CONTEXT_KINDS))
        return [
            Diagnostic("SMI1008", f"{api_version} {kind} is not stored here: SMI kinds and "
                       f"{served} only", path="kind")
        ]  # fmt: skip
    problems = [] if kind in SMI_KIND_GROUPS else _context_names(kind, meta)
    version = meta.get("resourceVersion")
    if version is not None and not (
        isinstance(version, str | int) and str(version).isascii() and str(version).isdigit()
    ):
        problems.append(
            Diagnostic("SMI2003", "must be a revision number, as `smictl get` prints it",
                       path="metadata.resourceVersion")
        )  # fmt: skip
    return problems


def _context_names(kind: str, meta: Mapping[str, Any]) -> list[Diagnostic]:
    """A context object's name and namespace. Admission checks these of SMI objects with the
    rest of their fields, but not of Services and the like: a list for a namespace would be
    stored under its Python repr, where no `get -n` finds it."""
    problems = list(check_subdomain(meta["name"], "metadata.name"))
    namespace = meta.get("namespace")
    if namespace is None or kind in CLUSTER_SCOPED_KINDS:
        return problems
    if not isinstance(namespace, str):
        problems.append(Diagnostic("SMI2003", "must be a string", path="metadata.namespace"))
    elif namespace:
        problems.extend(check_label(namespace, "metadata.namespace", what="namespace"))
    return problems


def normalise(doc: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The document as stored — a namespaced object without a namespace gets `default`, and
    `metadata.resourceVersion` is dropped (the store's own revision is the truth; a copy in the
    body would make every re-apply of `get` output `configured`) — and that resourceVersion."""
    key = _key(doc)
    meta = dict(doc.get("metadata") or {})
    version = meta.pop("resourceVersion", None)
    if key.namespace:
        meta["namespace"] = key.namespace
    return {**doc, "metadata": meta}, None if version is None else str(version)


def check_versions(snap: Snapshot, changes: Sequence[Change], expected: Mapping[int, str]) -> None:
    """Optimistic concurrency, inside the write transaction: an object sent with the
    resourceVersion it was read at is written only if nobody changed it since (409
    otherwise), so a read-modify-apply never silently undoes someone else's apply. Objects
    the apply leaves as they are pass whatever their resourceVersion."""
    denials = []
    for change in changes:
        want = expected.get(change.index)
        if want is None or change.unchanged:
            continue
        have = "" if change.old is None else str(change.old.revision)
        if want != have:
            now = f"it is now at {have}" if have else "it no longer exists"
            problem = Diagnostic(
                "SMI7002",
                f"{change.key} was read at resourceVersion {want} but {now}: someone changed "
                "it since; get it again and re-apply, or drop metadata.resourceVersion",
                path="metadata.resourceVersion",
            )
            denials.append(_refusal(change.index, str(change.key), [problem], code=409))
    if denials:
        raise Refused(f"{len(denials)} of the objects changed since they were read", denials,
                      status=409)  # fmt: skip


def _refusal(index: int, ref: str, problems: Sequence[Diagnostic], *, code: int) -> dict[str, Any]:
    """One entry of `denials`, in the shape admission denials have."""
    diagnostics = [{**d.to_json(), "object": ref} for d in problems]
    return {
        "index": index,
        "object": ref,
        "code": code,
        "diagnostics": diagnostics,
        "messages": [
            f"{d.path}: {d.message} ({d.code})" if d.path else f"{d.message} ({d.code})"
            for d in problems
        ],
    }


def _flag(body: Mapping[str, Any], name: str) -> bool:
    """A boolean field: `"false"` must not turn into a dry run (bool("false") is True)."""
    value = body.get(name, False)
    if not isinstance(value, bool):
        abort(400, f"{name}: expected true or false, not {type(value).__name__}")
    return value


def _resolve(ref: Mapping[str, Any], snap: Snapshot) -> ObjectKey:
    kind, name = ref.get("kind"), ref.get("name")
    if not isinstance(kind, str) or not isinstance(name, str) or not kind or not name:
        abort(400, "each delete item needs kind and name")
    namespace = "" if kind in CLUSTER_SCOPED_KINDS else str(ref.get("namespace") or "default")
    api_version = ref.get("apiVersion")
    if isinstance(api_version, str) and api_version:
        # (as the store keys it: an extensions/v1beta1 Deployment is the apps one)
        meta = {"name": name, "namespace": namespace}
        return ObjectKey.of({"apiVersion": api_version, "kind": kind, "metadata": meta})
    for obj in snap.objects:
        if (obj.key.kind.lower(), obj.key.namespace, obj.key.name) == (
            kind.lower(),
            namespace,
            name,
        ):
            return obj.key
    return ObjectKey("", kind, namespace, name)


def _write(
    run: Any, warnings: list[dict[str, Any]], *, keys: Sequence[ObjectKey] = ()
) -> tuple[Response, int]:
    try:
        outcome: Outcome = run()
        g.apis_outcome = outcome
    except Denied as exc:
        return jsonify(error=exc.summary(), denials=exc.denials, warnings=warnings), exc.status
    except Refused as exc:
        return jsonify(error=exc.error, denials=exc.denials, warnings=warnings), exc.status
    except StoreError as exc:
        diag = exc.diagnostics[0]
        if any(d.code != "SMI7004" for d in exc.diagnostics):
            return jsonify(
                error=diag.message, diagnostics=[d.to_json() for d in exc.diagnostics]
            ), 400
        # Every object that is not there, each at its index (the store names them all).
        denials = [denial for d in exc.diagnostics for denial in _missing(keys, d)]
        error = diag.message
        if len(exc.diagnostics) > 1:  # (the summary named the first alone)
            first = diag.message.removesuffix(" not found")
            error = f"{len(exc.diagnostics)} objects not found: {first}, ..."
        return jsonify(error=error, denials=denials, warnings=warnings), 404
    except sqlite3.Error as exc:
        # The store itself failed (disk full, busy past its timeout, an I/O error); it rolled
        # the write back, so nothing was applied. The operator's problem, not the caller's,
        # and worth a retry: 503 with SQLite's own words, not a 500 without them.
        logging.getLogger(logs.SERVER).error("store write failed: %s", exc)
        return jsonify(error=f"the store could not write: {exc}; nothing was applied"), 503
    return jsonify(
        revision=outcome.revision,
        dryRun=outcome.dry_run,
        results=[
            {
                "object": str(k),
                "kind": k.kind,
                "namespace": k.namespace,
                "name": k.name,
                "action": action,
            }
            for k, action in outcome.results
        ],
        warnings=warnings,
    ), 200


def _missing(keys: Sequence[ObjectKey], diag: Diagnostic) -> list[dict[str, Any]]:
    """The not-found error as a denial at the index of the missing object, so `smictl delete
    -f` can name its file and line (the store names the key in its message)."""
    for index, key in enumerate(keys):
        if diag.message == f"{key} not found":
            return [_refusal(index, str(key), [diag], code=404)]
    return [_refusal(-1, "", [diag], code=404)]


def _body(limit: int) -> dict[str, Any]:
    try:
        return read_json(request.stream, limit=limit)
    except BadReview as exc:
        abort(400, str(exc))
