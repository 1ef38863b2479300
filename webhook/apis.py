"""The local store API behind `smictl apply`, `get` and `delete` (local mode only).

    POST /apis/smictl.io/v1/apply    {"items": [object...], "dryRun": false}
    POST /apis/smictl.io/v1/delete   {"items": [{"kind", "name", "namespace"?, "apiVersion"?}],
                                      "ignoreNotFound": false, "dryRun": false}
    GET  /apis/smictl.io/v1/objects?kind=K&namespace=NS&name=N   (each filter optional)

A write is all-or-nothing: every object passes the same admission chain as `/validate`
(`webhook.policies.admit_change`) inside the store's write transaction, against the state it
lands on plus the rest of the batch; one denial refuses the whole batch with every reason
(403 for a policy denial, 422 when an object is invalid) and nothing changes.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from smi.store.base import CLUSTER_SCOPED_KINDS, Change, ObjectKey, Outcome, Snapshot, StoreError
from webhook import logs
from webhook.plane import current_plane
from webhook.policies import Denied, admit_batch
from webhook.reviews import BadReview, read_json

bp = Blueprint("apis", __name__, url_prefix="/apis/smictl.io/v1")
LOCAL_USER = "smictl:local-apply"


@bp.post("/apply")
def apply() -> tuple[Response, int]:
    plane = current_plane()
    body = _body(plane.settings.max_review_bytes)
    items = body.get("items")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        abort(400, "items: expected a non-empty list of objects")
    docs = [normalise(doc) for doc in items]
    dry_run = bool(body.get("dryRun"))
    warnings: list[dict[str, Any]] = []

    def check(snap: Snapshot, changes: Sequence[Change]) -> None:
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
    keys = [_resolve(ref, snap) for ref in items]
    dry_run = bool(body.get("dryRun"))
    warnings: list[dict[str, Any]] = []

    def check(snap: Snapshot, changes: Sequence[Change]) -> None:
        warnings.extend(admit_batch(plane, snap, changes, dry_run=dry_run, username=LOCAL_USER))

    return _write(
        lambda: plane.store.delete(
            keys, check=check, dry_run=dry_run, ignore_missing=bool(body.get("ignoreNotFound"))
        ),
        warnings,
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


def normalise(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document as stored: a namespaced object without a namespace gets `default`."""
    try:
        key = ObjectKey.of(doc)
    except StoreError as exc:
        abort(400, exc.diagnostics[0].message)
    out = dict(doc)
    if key.namespace:
        out["metadata"] = {**dict(doc.get("metadata") or {}), "namespace": key.namespace}
    return out


def _resolve(ref: Mapping[str, Any], snap: Snapshot) -> ObjectKey:
    kind, name = ref.get("kind"), ref.get("name")
    if not isinstance(kind, str) or not isinstance(name, str) or not kind or not name:
        abort(400, "each delete item needs kind and name")
    namespace = "" if kind in CLUSTER_SCOPED_KINDS else str(ref.get("namespace") or "default")
    api_version = ref.get("apiVersion")
    if isinstance(api_version, str) and api_version:
        return ObjectKey(api_version.rpartition("/")[0], kind, namespace, name)
    for obj in snap.objects:
        if (obj.key.kind.lower(), obj.key.namespace, obj.key.name) == (
            kind.lower(),
            namespace,
            name,
        ):
            return obj.key
    return ObjectKey("", kind, namespace, name)


def _write(run: Any, warnings: list[dict[str, Any]]) -> tuple[Response, int]:
    try:
        outcome: Outcome = run()
    except Denied as exc:
        return jsonify(error=exc.summary(), denials=exc.denials, warnings=warnings), exc.status
    except StoreError as exc:
        status = 404 if exc.diagnostics[0].code == "SMI7004" else 400
        return jsonify(
            error=exc.diagnostics[0].message, diagnostics=[d.to_json() for d in exc.diagnostics]
        ), status
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


def _body(limit: int) -> dict[str, Any]:
    try:
        return read_json(request.stream, limit=limit)
    except BadReview as exc:
        abort(400, str(exc))
