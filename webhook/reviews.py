"""AdmissionReview and ConversionReview as typed values: parse the request, build the response.

The API server sends `admission.k8s.io/v1` (or the older `v1beta1`) AdmissionReviews and
`apiextensions.k8s.io/v1` ConversionReviews. A body that is not one of these, is not JSON, or is
larger than the configured limit raises `BadReview` with a one-line reason, which the views turn
into a 400; nothing here can produce a 500. "Not JSON" is RFC 8259's: Python's json module also
reads `NaN`, `Infinity` and numbers beyond a double (as infinities), which are refused here.
"""

from __future__ import annotations

import base64
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from smi.errors import first_lines

ADMISSION_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
CONVERSION_VERSION = "apiextensions.k8s.io/v1"
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
# A `\uD800`-`\uDFFF` escape: JSON text may spell a lone UTF-16 surrogate, which no string
# handed on (UTF-8 for SQLite, the Rego engine, a CSR) can hold; checked only when one appears.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_TOO_DEEP = "request body is not JSON this server accepts: nested too deeply"


class BadReview(ValueError):
    """The request body is not a review this endpoint accepts (HTTP 400)."""


def read_json(stream: IO[bytes], *, limit: int) -> dict[str, Any]:
    """Read at most `limit` bytes of JSON object from `stream`."""
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise BadReview(f"request body exceeds {limit} bytes (SMI_WEBHOOK_MAX_REVIEW_BYTES)")
    if not body:
        raise BadReview("request body is empty; expected a JSON object")
    try:
        doc = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except _Refused as exc:
        raise BadReview(str(exc)) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadReview(f"request body is not JSON: {exc}") from exc
    except ValueError as exc:
        # The one other ValueError: int() refusing a number longer than Python's limit, in a
        # message that suggests `sys.set_int_max_str_digits()` to the client.
        raise BadReview(
            "request body is not JSON this server accepts: a number with more than "
            f"{sys.get_int_max_str_digits()} digits"
        ) from exc
    except RecursionError as exc:
        raise BadReview(_TOO_DEEP) from exc
    if not isinstance(doc, dict):
        raise BadReview("request body must be a JSON object")
    if _SURROGATE_ESCAPE.search(body):
        try:
            json.dumps(doc, ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:
            raise BadReview("request body holds a lone UTF-16 surrogate (not text)") from exc
        except RecursionError as exc:
            raise BadReview(_TOO_DEEP) from exc
    return doc


class _Refused(Exception):
    """A token Python's json module reads and this server does not; the text is the reason."""


def _no_constant(name: str) -> Any:
    """`NaN`, `Infinity` and `-Infinity` are no JSON (RFC 8259 §6), though Python reads them:
    no other JSON reader (the API server's, the Rego engine's) would take the document."""
    raise _Refused(f"request body is not JSON: {name} is not a JSON number (RFC 8259)")


def _finite(text: str) -> float:
    """A JSON number as a float. One beyond a double's range (`1e400`) is JSON, but Python
    reads it as an infinity, which is `Infinity` by another name: refused too (RFC 8259 §6
    lets a reader limit the range). Called only for numbers with a fraction or an exponent:
    integers keep the json module's fast path."""
    value = float(text)
    if math.isinf(value):
        raise _Refused(
            f"request body is not JSON this server accepts: the number {text[:32]} is beyond "
            "the range of a double"
        )
    return value


@dataclass(frozen=True, slots=True)
class AdmissionReview:
    """One AdmissionReview request, with the fields the webhook decides on lifted out."""

    api_version: str
    request: dict[str, Any]
    uid: str
    operation: str
    group: str
    version: str
    kind: str
    namespace: str
    name: str
    username: str
    dry_run: bool

    @property
    def subject(self) -> dict[str, Any]:
        """The object the review is about: `object`, or `oldObject` for a DELETE."""
        obj = self.request.get("object") or self.request.get("oldObject") or {}
        return obj if isinstance(obj, dict) else {}


def parse_admission(doc: dict[str, Any]) -> AdmissionReview:
    api_version = doc.get("apiVersion")
    if api_version not in ADMISSION_VERSIONS:
        raise BadReview(
            f"apiVersion {api_version!r} is not an AdmissionReview version this webhook serves "
            f"({', '.join(ADMISSION_VERSIONS)})"
        )
    if doc.get("kind") != "AdmissionReview":
        raise BadReview(f"kind {doc.get('kind')!r} is not AdmissionReview")
    req = doc.get("request")
    if not isinstance(req, dict):
        raise BadReview("request: missing or not an object")
    uid = req.get("uid")
    if not isinstance(uid, str) or not uid:
        what = "missing" if uid is None or uid == "" else f"{type(uid).__name__}, not a string"
        raise BadReview(f"request.uid: {what}; the API server matches answers by uid")
    operation = req.get("operation")
    if operation not in OPERATIONS:
        raise BadReview(f"request.operation: {operation!r} is not one of {', '.join(OPERATIONS)}")
    kind = req.get("kind")
    if not isinstance(kind, dict) or not isinstance(kind.get("kind"), str):
        raise BadReview("request.kind: missing or not a GroupVersionKind object")
    for field in ("object", "oldObject"):
        if req.get(field) is not None and not isinstance(req.get(field), dict):
            raise BadReview(f"request.{field}: must be an object or null")
    return review_of(req, api_version=str(api_version))


def review_of(req: dict[str, Any], *, api_version: str = "admission.k8s.io/v1") -> AdmissionReview:
    """The fields the webhook decides on, lifted out of an AdmissionRequest as it is: checked
    first by `parse_admission` for the API server's reviews; taken as given from the Data API
    (`smictl/admission`), whose OPA clients ask a question and need send no uid (a missing
    operation is a CREATE)."""
    kind = req.get("kind")
    gvk: dict[str, Any] = kind if isinstance(kind, dict) else {}
    user_info = req.get("userInfo")
    user: dict[str, Any] = user_info if isinstance(user_info, dict) else {}
    return AdmissionReview(
        api_version=api_version,
        request=req,
        uid=str(req.get("uid") or ""),
        operation=str(req.get("operation") or "CREATE"),
        group=str(gvk.get("group") or ""),
        version=str(gvk.get("version") or ""),
        kind=str(gvk.get("kind") or ""),
        namespace=str(req.get("namespace") or ""),
        name=str(req.get("name") or ""),
        username=str(user.get("username") or ""),
        dry_run=bool(req.get("dryRun")),
    )


def admission_response(
    review: AdmissionReview,
    *,
    allowed: bool,
    code: int | None = None,
    message: str = "",
    warnings: Sequence[str] = (),
    patch: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The AdmissionReview answer, in the request's own apiVersion, uid echoed."""
    response: dict[str, Any] = {"uid": review.uid, "allowed": allowed}
    if code is not None or message:
        status: dict[str, Any] = {"message": message} if message else {}
        if code is not None:
            status["code"] = code
        if not allowed:
            status["status"] = "Failure"
            status["reason"] = _REASONS.get(code or 0, "Forbidden")
        response["status"] = status
    if warnings:
        response["warnings"] = bounded_warnings(warnings)
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(list(patch)).encode()).decode()
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": response}


_REASONS = {403: "Forbidden", 422: "Invalid", 500: "InternalError", 400: "BadRequest"}

# The API server passes warnings on as HTTP `Warning` headers: it drops a warning holding a
# control character, and once more than 4,096 characters of warnings (from every webhook and
# itself) have been added it cuts each to 256 characters or leaves the rest out; its docs ask
# for 120 characters where possible. So each warning is one line of at most MAX_WARNING
# characters, and an answer holds at most MAX_WARNINGS of them and MAX_WARNINGS_TOTAL
# characters (room left for the other sources), the rest counted in one last line.
MAX_WARNING = 256
MAX_WARNINGS = 50
MAX_WARNINGS_TOTAL = 3000
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# The code a warning line ends with (`(SMI2206)`, a policy's `(ACME1)`): kept when cut.
_CODE_SUFFIX = re.compile(r" \([A-Z][A-Z0-9]{0,14}\)$")
_ELLIPSIS = "\u2026"


def bounded_warnings(warnings: Sequence[str]) -> list[str]:
    """`warnings` as the API server passes them on whole: one line each, each given once, at
    most MAX_WARNINGS and MAX_WARNINGS_TOTAL characters, then "... and N more warnings"."""
    lines = list(dict.fromkeys(cut_warning(w) for w in warnings))
    kept, more = first_lines(lines, most=MAX_WARNINGS, chars=MAX_WARNINGS_TOTAL)
    if more:
        kept.append(f"... and {more} more warning{'s' if more > 1 else ''}")
    return kept


def cut_warning(text: str) -> str:
    """`text` on one line, cut to MAX_WARNING characters at a word boundary near the limit
    with an ellipsis, keeping the code it ends with."""
    line = _CONTROL.sub(" ", text).strip()
    if len(line) <= MAX_WARNING:
        return line
    code = _CODE_SUFFIX.search(line)
    suffix = code.group() if code else ""
    room = MAX_WARNING - len(_ELLIPSIS) - len(suffix)
    head = line[:room]
    space = head.rfind(" ")
    if space >= room - 40:  # a word boundary close to the limit reads better than a cut word
        head = head[:space]
    return head.rstrip(" ,;:") + _ELLIPSIS + suffix


@dataclass(frozen=True, slots=True)
class ConversionReview:
    uid: str
    desired: str
    objects: tuple[dict[str, Any], ...]


def parse_conversion(doc: dict[str, Any]) -> ConversionReview:
    if doc.get("apiVersion") != CONVERSION_VERSION or doc.get("kind") != "ConversionReview":
        raise BadReview(
            f"expected a {CONVERSION_VERSION} ConversionReview, got "
            f"{doc.get('apiVersion')!r} {doc.get('kind')!r}"
        )
    req = doc.get("request")
    if not isinstance(req, dict):
        raise BadReview("request: missing or not an object")
    uid, desired, objects = req.get("uid"), req.get("desiredAPIVersion"), req.get("objects")
    if not isinstance(uid, str) or not uid:
        what = "missing" if uid is None or uid == "" else f"{type(uid).__name__}, not a string"
        raise BadReview(f"request.uid: {what}")
    if not isinstance(desired, str) or "/" not in desired:
        raise BadReview("request.desiredAPIVersion: missing or not group/version")
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise BadReview("request.objects: must be a list of objects")
    return ConversionReview(uid=uid, desired=desired, objects=tuple(objects))


def conversion_response(
    review: ConversionReview, *, converted: Sequence[dict[str, Any]] = (), failure: str = ""
) -> dict[str, Any]:
    result: dict[str, Any] = (
        {"status": "Failure", "message": failure} if failure else {"status": "Success"}
    )
    response: dict[str, Any] = {"uid": review.uid, "result": result}
    response["convertedObjects"] = [] if failure else list(converted)
    return {"apiVersion": CONVERSION_VERSION, "kind": "ConversionReview", "response": response}
