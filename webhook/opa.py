"""`POST /v1/data/<path>`: the OPA Data API, answered by our own engine, so that any OPA client
(opa-python-client, `smi.policy.remote.RemoteOPA`, a Gatekeeper-style caller) can ask smictl for
decisions. Body `{"input": ...}`, answer `{"result": ...}`; an undefined document is `{}` (as
OPA answers), an evaluation error a 500 `{"code": "internal_error", "message": ...}`, and every
other error too is in OPA's shape `{"code", "message"}` (see `serves`). The input is any JSON
value, as in OPA; without one the answer carries OPA's `api_usage_warning`.

Documents served:
- `<policy package path>/violation` and `<policy package path>`: a loaded admission policy's
  violation set (`[{msg, path, details}]`), evaluated by the embedded engine;
- `smictl/admission`: the whole admission chain; input is an AdmissionRequest (or a whole
  AdmissionReview), result `{allowed, code, messages, warnings}`;
- `smictl/authz`: the MeshPolicy decision; input `{source, destination, port, method, path,
  headers}` (SPIFFE IDs or ns/sa; headers read as the proxy reads them, see `_headers`),
  result `{allowed, reason, mode, rules}`.

Who may ask: whoever may read the MeshPolicy (`webhook.mesh.PolicyReaders`: a workload's token,
or the local admin token), with `Authorization: Bearer`, as OPA's `--authentication=token`
asks for; anyone else gets OPA's 401 `{"code": "unauthorized"}`, and a ServiceAccount token the
API server could not review now a 503 `{"code": "internal_error"}` with `Retry-After: 1`.
`smictl/authz` answers who may call whom, so asking it enough questions reads the
authorization graph the policy route guards.
"""

from __future__ import annotations

import io
import json
from typing import Any

from flask import Blueprint, Response, jsonify, request

from smi.identity import Identity, IdentityError
from webhook import logs
from webhook.admission import validate_review
from webhook.auth import AuthError, ReviewUnavailable
from webhook.mesh import policy_readers
from webhook.plane import ControlPlane, current_plane
from webhook.reviews import BadReview, read_json, review_of

PREFIX = "/v1/data"

bp = Blueprint("opa", __name__, url_prefix=PREFIX)

# OPA's answer beside a result when the request had no input (no `input` key, or `null`).
NO_INPUT_WARNING = {"code": "api_usage_warning", "message": "'input' key missing from the request"}


@bp.before_request
def _authenticate() -> tuple[Response, int] | None:
    """401 in OPA's shape for a caller who proves nothing, before its body is read; 503 when
    the API server could not review its token now. A request the worker runs on its event
    loop was authenticated there (`PolicyReaders.of`): it is not checked twice."""
    try:
        policy_readers().of(request.environ)
    except AuthError as exc:
        _decision("data_api_unauthenticated", str(exc))
        response, status = _error("unauthorized", str(exc), 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="smictl"'
        return response, status
    except ReviewUnavailable as exc:
        _decision("data_api_review_unavailable", str(exc))
        response, status = opa_error(503, str(exc))
        response.headers["Retry-After"] = "1"
        return response, status
    return None


def _decision(event: str, reason: str) -> None:
    logs.emit(
        logs.DECISION,
        {"event": event, "method": request.method, "remote": request.remote_addr, "reason": reason},
    )


@bp.route("/", methods=["POST", "GET"], defaults={"path": ""}, strict_slashes=False)
@bp.route("/<path:path>", methods=["POST", "GET"])
def data(path: str) -> tuple[Response, int]:
    plane = current_plane()
    try:
        input_doc = _input(limit=plane.settings.max_review_bytes)
    except BadReview as exc:
        return _error("invalid_parameter", str(exc), 400)
    path = path.strip("/")
    if not path:
        # OPA answers the whole data document here; smictl serves the documents below.
        return _error("resource_not_found", ROOT_NOT_SERVED, 404)
    try:
        found, result = evaluate(plane, path, input_doc)
    except BadReview as exc:
        return _error("invalid_parameter", str(exc), 400)
    except EvaluationFailed as exc:
        return _error("internal_error", str(exc), 500)
    answer: dict[str, Any] = {"result": result} if found else {}
    if input_doc is None:
        answer["warning"] = NO_INPUT_WARNING
    if _pretty():
        text = json.dumps(answer, indent=2, ensure_ascii=False) + "\n"
        return Response(text, mimetype="application/json"), 200
    return jsonify(answer), 200


def _pretty() -> bool:
    """OPA's `?pretty` (or `?pretty=true`): the answer indented for people."""
    value = request.args.get("pretty")
    return value is not None and value.lower() in ("", "true")


ROOT_NOT_SERVED = (
    "the whole data document is not served: ask for a document, /v1/data/<package path> "
    "(a policy's package with / for .), /v1/data/smictl/admission or /v1/data/smictl/authz"
)


def _input(*, limit: int) -> Any:
    """The request's input document; None for none: no body (an empty POST), no `input` key,
    or `null`, which OPA all reads as no input. A GET gives it as `?input=<JSON>`, as OPA's
    REST API takes it: ignored, every policy document answered "no violation" for it."""
    if request.method != "POST":
        given = request.args.get("input")
        if given is None:
            return None
        try:
            # The parameter is the input itself: read as the `input` of a POST body is, with
            # the same bounds and refusals.
            body = b'{"input":' + given.encode("utf-8", "surrogatepass") + b"}"
            return read_json(io.BytesIO(body), limit=limit).get("input")
        except BadReview as exc:
            raise BadReview(f"input query parameter: {exc}") from exc
    body = request.stream.read(limit + 1)
    if not body:
        return None
    return read_json(io.BytesIO(body), limit=limit).get("input")


class EvaluationFailed(Exception):
    """The engine could not evaluate the document (a 500, as OPA answers)."""


def evaluate(plane: ControlPlane, path: str, input_doc: Any) -> tuple[bool, Any]:
    """(defined?, value) of the document at `path` for `input_doc`."""
    for name, answer in (("smictl/admission", _admission), ("smictl/authz", _authz)):
        if path == name or path.startswith(name + "/"):
            # A field of the answer as OPA answers a rule's or a key's document (`.../allowed`
            # is the boolean): an OPA client asking for it read undefined, which reads as deny.
            return _below(answer(plane, input_doc), path[len(name) :].strip("/"))
    # OPA evaluates any JSON value as the input (`{"input": 5}` is input 5), and no input (none
    # given, or `null`) as undefined. The engine takes a value, so no input is evaluated as
    # `{}` (rules on `input.<field>` are undefined either way) and the answer says it was
    # missing, as OPA's does.
    doc = {} if input_doc is None else input_doc
    for policy in plane.policies.policies:
        if path == policy.package.replace(".", "/"):
            found, violations = _data(plane, policy.entrypoint, doc)
            return True, {"violation": violations if found else []}
    return _data(plane, path, doc)


def _below(document: Any, rest: str) -> tuple[bool, Any]:
    """(defined?, value) of the document at `rest` (`a/b`) below `document`."""
    for key in rest.split("/") if rest else ():
        if isinstance(document, dict) and key in document:
            document = document[key]
        elif (
            isinstance(document, list)
            and key.isascii()
            and key.isdigit()
            and int(key) < len(document)
        ):
            document = document[int(key)]
        else:
            return False, None
    return True, document


def _data(plane: ControlPlane, path: str, doc: Any) -> tuple[bool, Any]:
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
    # The answer `/validate` gives, bypasses and ratcheting included (an excluded namespace,
    # the control plane's own account, a metadata-only update of a stored object): the chain
    # alone refused what the webhook admits.
    answer, _decision, reasons = validate_review(plane, review_of(input_doc))
    response = answer["response"]
    status = response.get("status", {})
    return {
        "allowed": bool(response["allowed"]),
        "code": int(status.get("code", 200)),
        "messages": reasons,
        "warnings": list(response.get("warnings", ())),
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
    except (IdentityError, TypeError, ValueError, OverflowError) as exc:
        raise BadReview(f"input: {exc}") from exc
    port = _port(input_doc.get("port"))
    method, path = _text(input_doc, "method"), _text(input_doc, "path")
    headers = _headers(input_doc.get("headers"))
    index = plane.derived("authz-index", lambda view: PolicyIndex.build(view.policy))
    decision = authorize(
        index,
        source,
        destination.spiffe_id,
        port,
        method,
        path,
        headers,
    )
    return {
        "allowed": decision.allowed,
        "mode": decision.mode,
        "reason": str(decision.reason),
        "wouldDeny": decision.would_deny,
        "rules": list(decision.rules),
        "detail": decision.detail,
    }


def _port(given: Any) -> int:
    """`input.port`: a number from 0 to 65535 (0, or none, is no port), or those digits as a
    string, as a Service's `targetPort` may be written. `true` is not 1, nor `8080.9` 8080: an
    answer about a port nobody asked for would be wrong either way."""
    if given is None:
        return 0
    digits = isinstance(given, str) and given.isascii() and given.isdigit()
    if digits or (isinstance(given, float) and given.is_integer()):
        given = int(given)
    if isinstance(given, bool) or not isinstance(given, int) or not 0 <= given <= 65535:
        shown = json.dumps(given)[:40] if isinstance(given, int | float | str) else ""
        raise BadReview(
            f"input.port: expected a port number from 0 to 65535, not {shown or _json_type(given)}"
        )
    return given


def _text(input_doc: dict[str, Any], field: str) -> str | None:
    """`input.method` or `input.path`: a string, or none (only any-method or any-path rules
    accept a request without one). A number is not its digits: the proxy reads only text."""
    value = input_doc.get(field)
    if value is None or isinstance(value, str):
        return value
    raise BadReview(f"input.{field}: expected a string, not {_json_type(value)}")


def _headers(given: Any) -> dict[str, str]:
    """`input.headers` read as the proxy reads the request's header lines (`request_headers`):
    `{"X-Team": "blue "}` is `x-team: blue`, a list of strings is that many lines of one name,
    and names that differ only by case are one header, their lines joined in the code-point
    order of the names (a JSON object's keys have no order to keep). Any other value is
    refused: the proxy never sees a number or an object, and an answer for `str(5)` or
    `str([1])` would be about a request nobody can send."""
    from smi.compiler.ir.matching import request_headers

    if given is None:
        return {}
    if not isinstance(given, dict):
        raise BadReview("input.headers: expected an object of header names to values")
    lines: list[tuple[str, str]] = []
    for name in sorted(given):
        value = given[name]
        values = value if isinstance(value, list) else [value]
        wrong = next((v for v in values if not isinstance(v, str)), "")
        if not isinstance(wrong, str):
            held = f"a list holding {_json_type(wrong)}" if values is value else _json_type(wrong)
            # escaped, so that a name with a line break still makes a one-line message
            raise BadReview(
                f"input.headers.{json.dumps(name)[1:-1][:80]}: expected a string or a list of "
                f"strings, not {held}"
            )
        lines.extend((name, v) for v in values)
    return request_headers(lines)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a list" if isinstance(value, list) else "an object"


def _error(code: str, message: str, status: int) -> tuple[Response, int]:
    return jsonify(code=code, message=message), status


def serves(path: str) -> bool:
    """Whether `path` is the Data API's: its errors, wherever they arise (Flask's 404 and 405,
    an internal error), answer in OPA's shape, which OPA clients read."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def opa_error(status: int, message: str) -> tuple[Response, int]:
    """An error answer of the Data API: `{"code": ..., "message": ...}` with OPA's codes."""
    default = "invalid_parameter" if status < 500 else "internal_error"
    return _error(_OPA_CODES.get(status, default), message, status)


_OPA_CODES = {404: "resource_not_found", 405: "invalid_operation", 500: "internal_error"}
