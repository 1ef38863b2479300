"""`POST /v1/data/<path>`: the OPA Data API, answered by our own engine, so that any OPA client
(opa-python-client, `smi.policy.remote.RemoteOPA`, a Gatekeeper-style caller) can ask smictl for
decisions. Body `{"input": ...}`, answer `{"result": ...}`; an undefined document is `{}` (as
OPA answers), an evaluation error a 500 `{"code": "internal_error", "message": ...}`.

Documents served:
- `<policy package path>/violation` and `<policy package path>`: a loaded admission policy's
  violation set (`[{msg, path, details}]`), evaluated by the embedded engine;
- `smictl/admission`: the whole admission chain; input is an AdmissionRequest (or a whole
  AdmissionReview), result `{allowed, code, messages, warnings}`;
- `smictl/authz`: the MeshPolicy decision; input `{source, destination, port, method, path,
  headers}` (SPIFFE IDs or ns/sa), result `{allowed, reason, mode, rules}`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from smi.identity import Identity, IdentityError
from webhook.plane import ControlPlane, current_plane
from webhook.policies import admit
from webhook.reviews import BadReview, read_json

bp = Blueprint("opa", __name__, url_prefix="/v1/data")


@bp.route("/<path:path>", methods=["POST", "GET"])
def data(path: str) -> tuple[Response, int]:
    plane = current_plane()
    input_doc: Any = None
    if request.method == "POST" and request.content_length != 0:
        try:
            body = read_json(request.stream, limit=plane.settings.max_review_bytes)
        except BadReview as exc:
            return _error("invalid_parameter", str(exc), 400)
        input_doc = body.get("input")
    path = path.strip("/")
    try:
        found, result = evaluate(plane, path, input_doc)
    except BadReview as exc:
        return _error("invalid_parameter", str(exc), 400)
    except EvaluationFailed as exc:
        return _error("internal_error", str(exc), 500)
    return (jsonify(result=result) if found else jsonify({})), 200


class EvaluationFailed(Exception):
    """The engine could not evaluate the document (a 500, as OPA answers)."""


def evaluate(plane: ControlPlane, path: str, input_doc: Any) -> tuple[bool, Any]:
    """(defined?, value) of the document at `path` for `input_doc`."""
    if path == "smictl/admission":
        return True, _admission(plane, input_doc)
    if path == "smictl/authz":
        return True, _authz(plane, input_doc)
    doc = input_doc if isinstance(input_doc, dict) else {}
    for policy in plane.policies.policies:
        if path == policy.package.replace(".", "/"):
            found, violations = _data(plane, policy.entrypoint, doc)
            return True, {"violation": violations if found else []}
    return _data(plane, path, doc)


def _data(plane: ControlPlane, path: str, doc: dict[str, Any]) -> tuple[bool, Any]:
    """A policy document, answered by the PolicySet's own Data API semantics."""
    status, body = plane.policies.data_api(path, doc)
    if status != 200:
        raise EvaluationFailed(str(body.get("message") or body))
    return "result" in body, body.get("result")


def _admission(plane: ControlPlane, input_doc: Any) -> dict[str, Any]:
    if isinstance(input_doc, dict) and input_doc.get("kind") == "AdmissionReview":
        input_doc = input_doc.get("request")
    if not isinstance(input_doc, dict) or not isinstance(input_doc.get("object"), dict | None):
        raise BadReview("input: expected an AdmissionRequest (or an AdmissionReview)")
    result = admit(plane, input_doc, plane.view().inventory)
    return {
        "allowed": bool(result.allowed),
        "code": int(result.code),
        "messages": list(result.messages),
        "warnings": list(result.warnings),
    }


def _authz(plane: ControlPlane, input_doc: Any) -> dict[str, Any]:
    from smi.compiler.ir.decide import authorize
    from smi.compiler.ir.index import PolicyIndex

    if not isinstance(input_doc, dict):
        raise BadReview("input: expected {source, destination, port, method, path, headers}")
    td = plane.settings.trust_domain
    try:
        source = (
            Identity.parse(str(input_doc["source"]), trust_domain=td).spiffe_id
            if (input_doc.get("source"))
            else None
        )
        destination = Identity.parse(str(input_doc.get("destination", "")), trust_domain=td)
        port = int(input_doc.get("port", 0))
    except (IdentityError, TypeError, ValueError, OverflowError) as exc:
        raise BadReview(f"input: {exc}") from exc
    headers = input_doc.get("headers") or {}
    index = plane.derived("authz-index", lambda view: PolicyIndex.build(view.policy))
    decision = authorize(
        index,
        source,
        destination.spiffe_id,
        port,
        input_doc.get("method"),
        input_doc.get("path"),
        {str(k).lower(): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {},
    )
    return {
        "allowed": decision.allowed,
        "mode": decision.mode,
        "reason": str(decision.reason),
        "wouldDeny": decision.would_deny,
        "rules": list(decision.rules),
        "detail": decision.detail,
    }


def _error(code: str, message: str, status: int) -> tuple[Response, int]:
    return jsonify(code=code, message=message), status
