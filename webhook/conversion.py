"""`POST /convert`: the CRD conversion webhook (ConversionReview `apiextensions.k8s.io/v1`).

Every object converts through its group's hub (`smi.conversion.convert_document`), so any served
version reaches any other and fields the target cannot hold survive in the lossy-field
annotation. One object that cannot convert fails the whole review with `result.status: Failure`
and the reason, as the API server expects; a body that is not a ConversionReview is a 400.

The API server converts a whole list or watch in one review and must never be refused for an
object it stores (conversion is not validation), so every stored version converts to every
served one: what an older version cannot hold (UDPRoute rules in access v1alpha1/v1alpha2)
leaves its view for the annotation instead of failing the review, and comes back when the
object is written through that version. What still fails: a group or kind the target lacks
(never a stored object of the CRD), a corrupt lossy-fields annotation and an IdentityBinding
destination below access v1alpha4, which admission rejects, so they are stored only if it
was bypassed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from smi.errors import Diagnostic, SMIError, escaped_line
from webhook import logs
from webhook.plane import current_plane
from webhook.reviews import BadReview, ConversionReview, conversion_response, parse_conversion
from webhook.reviews import read_json as read_review

bp = Blueprint("conversion", __name__)


@bp.post("/convert")
def convert() -> tuple[Response, int]:
    plane = current_plane()
    try:
        review = parse_conversion(
            read_review(request.stream, limit=plane.settings.max_review_bytes)
        )
    except BadReview as exc:
        return jsonify(error=str(exc), code="SMI7010"), 400
    body, failure = convert_review(review)
    plane.metrics.conversions.labels(result="failure" if failure else "success").inc(
        max(1, len(review.objects))
    )
    if failure:
        logs.emit(
            logs.DECISION,
            {
                "event": "conversion_failed",
                "uid": review.uid,
                "to": review.desired,
                "reason": failure,
            },
        )
    return jsonify(body), 200


def convert_review(review: ConversionReview) -> tuple[dict[str, Any], str]:
    """The ConversionReview answer and the failure reason ("" on success)."""
    from smi.conversion import convert_document

    converted: list[dict[str, Any]] = []
    for index, obj in enumerate(review.objects):
        try:
            converted.append(convert_document(obj, to=review.desired))
        except SMIError as exc:
            reasons = "; ".join(_reason(d) for d in exc.diagnostics)
        except Exception as exc:  # any failure is a Failure answer, never a 500
            # The API server fails the request on a Failure as on a 500, but only a Failure
            # carries a reason to the user; the traceback stays in the log.
            logging.getLogger(logs.SERVER).exception("conversion of objects[%d] crashed", index)
            reasons = f"internal error ({type(exc).__name__}); the control plane log has details"
        else:
            continue
        failure = f"objects[{index}] {_name(obj)}: cannot convert to {review.desired}: {reasons}"
        failure = escaped_line(failure)
        return conversion_response(review, failure=failure), failure
    return conversion_response(review, converted=converted), ""


def _reason(d: Diagnostic) -> str:
    """`path: reason (CODE)`: which field of the object is wrong, not only how."""
    path = f"{d.path}: " if d.path else ""
    return f"{path}{d.message} ({d.code})"


def _name(obj: dict[str, Any]) -> str:
    raw = obj.get("metadata")
    meta: dict[str, Any] = raw if isinstance(raw, dict) else {}
    kind, namespace, name = obj.get("kind", "?"), meta.get("namespace", ""), meta.get("name", "")
    return f"{_as_written(kind)} {_as_written(namespace)}/{_as_written(name)}".strip()


def _as_written(value: Any) -> str:
    """A string as it is; anything else (the object being refused may name itself `true` or
    `null`) in JSON, the spelling the API server sent, not Python's `True` or `None`."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return "?"
