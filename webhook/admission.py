"""`POST /validate` and `POST /mutate`: the admission webhooks, with gatekeeper's semantics.

/validate calls `smi.policy.admission.admit` — the same chain as `smictl admit` and the local
apply — on the AdmissionRequest as the API server sent it, with the store's objects as the
inventory. Denied = `allowed: false` with status 403 and `[policy] message` lines; invalid = 422
with one line per field path; an internal failure = 500 (fail closed); warnings pass through;
the uid is echoed and the answer uses the request's apiVersion (v1 or v1beta1). Requests in an
excluded namespace or by the control plane's own ServiceAccount are allowed with the reason, and
so are metadata-only UPDATEs of an object being deleted (its finalizers must be able to come
off). Any other metadata-only UPDATE is ratcheted: the problems the stored object already had
become warnings. Warnings are bounded in `webhook.reviews`.

/mutate injects the sidecar into Pods that opt in (`webhook.injection`), as a JSON Patch;
/mutate/namespace-opted-in is the same for the webhook that selects labelled namespaces. Pods
in an excluded namespace or created by the control plane's own ServiceAccount are admitted
uninjected, with the reason.
A body that is not an AdmissionReview gets a 400 with the reason, never a 500.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request

from smi.errors import SMIError
from smi.identity import DEFAULT_TRUST_DOMAIN, Identity, IdentityError
from webhook import logs
from webhook.injection import INJECT_KEY, InjectionConfig, decide
from webhook.plane import ControlPlane, current_plane
from webhook.policies import admit, metadata_only, ratchet
from webhook.reviews import AdmissionReview, BadReview, admission_response, parse_admission
from webhook.reviews import read_json as read_review

NAMESPACE_OPTED_IN_PATH = "/mutate/namespace-opted-in"

bp = Blueprint("admission", __name__)


def _review(plane: ControlPlane) -> AdmissionReview | tuple[Response, int]:
    try:
        doc = read_review(request.stream, limit=plane.settings.max_review_bytes)
        return parse_admission(doc)
    except BadReview as exc:
        return jsonify(error=str(exc), code="SMI7010"), 400


@bp.post("/validate")
def validate() -> Response | tuple[Response, int]:
    plane = current_plane()
    started = time.perf_counter()
    review = _review(plane)
    if not isinstance(review, AdmissionReview):
        return review
    answer, decision, messages = validate_review(plane, review)
    _finish(
        plane, review, webhook="validate", decision=decision, messages=messages, started=started
    )
    return _json(answer)


def validate_review(
    plane: ControlPlane, review: AdmissionReview
) -> tuple[dict[str, Any], str, list[str]]:
    """The AdmissionReview answer, the decision label, and the reasons (for the log)."""
    bypass = _bypass(plane, review) or _terminating(review)
    if bypass:
        return admission_response(review, allowed=True, message=bypass), "bypassed", [bypass]
    try:
        inventory = plane.view().inventory
        result = admit(plane, review.request, inventory)
        if not result.allowed and metadata_only(review.request):
            result = ratchet(plane, review.request, result, inventory)
    except SMIError as exc:
        reason = "; ".join(d.message for d in exc.diagnostics)
        return _internal(review, f"admission chain failed: {reason}")
    except Exception as exc:  # fail closed, and keep the traceback in the log only
        logging.getLogger(logs.SERVER).exception("admission chain crashed")
        return _internal(review, f"admission chain failed: {type(exc).__name__}")
    messages = list(result.messages)
    answer = admission_response(
        review,
        allowed=bool(result.allowed),
        code=None if result.allowed else int(result.code),
        message="\n".join(messages),
        warnings=list(result.warnings),
    )
    decision = "allowed" if result.allowed else ("invalid" if result.code == 422 else "denied")
    return answer, decision, messages


def _terminating(review: AdmissionReview) -> str:
    """Why a metadata-only UPDATE of an object being deleted is let through unchecked, or "".
    Removing the last finalizer is what lets the object go: refusing it because the object
    breaks a rule that came after it would keep the object, and its namespace, Terminating
    for good (Gatekeeper and Kyverno do not judge these either). The stored object
    (`oldObject`) is the one that says it is being deleted. A spec change is still checked:
    the control plane enforces an object until it is gone, and a stuck finalizer would
    otherwise be a way round every policy."""
    old = review.request.get("oldObject")
    meta = old.get("metadata") if isinstance(old, dict) else None
    if not (isinstance(meta, dict) and meta.get("deletionTimestamp")):
        return ""
    if not metadata_only(review.request):
        return ""
    return "the object is being deleted (metadata.deletionTimestamp): metadata is not checked"


def _json(doc: dict[str, Any]) -> Response:
    """The answer as compact JSON (Flask's jsonify sorts keys: wasted work on the hot path)."""
    return Response(json.dumps(doc, separators=(",", ":")), mimetype="application/json")


def _internal(review: AdmissionReview, reason: str) -> tuple[dict[str, Any], str, list[str]]:
    return admission_response(review, allowed=False, code=500, message=reason), "error", [reason]


def _bypass(plane: ControlPlane, review: AdmissionReview) -> str:
    settings = plane.settings
    if review.namespace and review.namespace in settings.excluded_namespaces:
        return (
            f"namespace {review.namespace} is excluded from smictl admission "
            "(SMI_WEBHOOK_EXCLUDED_NAMESPACES)"
        )
    own = _own_account(settings.service_account)
    if own is not None and review.username == own[0]:
        return f"request by the control plane's own service account {own[1]}"
    return ""


@functools.lru_cache(maxsize=4)  # one setting per process: parsed once, not per review
def _own_account(service_account: str) -> tuple[str, str] | None:
    """(the Kubernetes username, `ns/sa`) of the control plane's own ServiceAccount, in either
    form `serve --service-account` accepts (`ns/sa` or its SPIFFE ID), or None when the setting
    names none (preflight refuses that; a Settings built in code may still hold it). Parsed as
    preflight parses it: splitting the text at its first "/" read a SPIFFE ID as namespace
    `spiffe:`, and the bypass was silently off."""
    try:
        identity = Identity.parse(service_account, trust_domain=DEFAULT_TRUST_DOMAIN)
    except IdentityError:
        return None
    username = f"system:serviceaccount:{identity.namespace}:{identity.service_account}"
    return username, identity.short


@bp.post("/mutate")
def mutate() -> Response | tuple[Response, int]:
    return _mutate(namespace_opted_in=False)


@bp.post(NAMESPACE_OPTED_IN_PATH)
def mutate_namespace_opted_in() -> Response | tuple[Response, int]:
    """The webhook whose namespaceSelector requires the namespace's `smictl.io/inject=enabled`
    label: the API server has just checked that label, so it counts as set even when the
    control plane's namespace cache has not seen it yet (a namespace labelled and a Deployment
    applied together would otherwise start its pods without a proxy)."""
    return _mutate(namespace_opted_in=True)


def _mutate(*, namespace_opted_in: bool) -> Response | tuple[Response, int]:
    plane = current_plane()
    started = time.perf_counter()
    review = _review(plane)
    if not isinstance(review, AdmissionReview):
        return review
    answer, decision, reason = mutate_review(plane, review, namespace_opted_in=namespace_opted_in)
    _finish(plane, review, webhook="mutate", decision=decision, messages=[reason], started=started)
    return _json(answer)


def mutate_review(
    plane: ControlPlane, review: AdmissionReview, *, namespace_opted_in: bool = False
) -> tuple[dict[str, Any], str, str]:
    if review.kind != "Pod" or review.group != "" or review.operation != "CREATE":
        # The core group's Pod only: a custom resource named Pod is no pod the kubelet runs.
        kind = f"{review.kind}.{review.group}" if review.group else review.kind
        reason = f"{review.operation} {kind}: only Pod creations are injected"
        return admission_response(review, allowed=True), "skipped", reason
    bypass = _bypass(plane, review)
    if bypass:
        # In the answer too, as /validate gives its bypasses: whoever reads the review (a
        # webhook recorder, a test harness) learns why the pod has no proxy, not only this log.
        reason = f"not injected: {bypass}"
        return admission_response(review, allowed=True, message=reason), "skipped", reason
    pod = review.request.get("object") or {}
    meta = pod.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    namespace = review.namespace or str(meta.get("namespace") or "")
    settings = plane.settings
    config = InjectionConfig(
        image=settings.proxy_image,
        trust_domain=settings.trust_domain,
        control_plane_url=settings.control_plane_url,
        ca_pem=plane.ca.cert_pem().decode() if plane.ca is not None else "",
        control_plane_ca_pem=_serving_ca(settings.serving_ca_file),
        native_sidecars=settings.native_sidecars,
    )
    labels = dict(plane.view().namespace_labels.get(namespace, {}))
    if namespace_opted_in:
        labels[INJECT_KEY] = "enabled"
    decision = decide(
        pod,
        namespace=namespace,
        config=config,
        namespace_labels=labels,
    )
    if decision.refusal:
        message = f"smictl cannot inject its proxy into this pod: {decision.refusal}"
        answer = admission_response(review, allowed=False, code=422, message=message)
        return answer, "refused", decision.refusal
    answer = admission_response(
        review, allowed=True, warnings=decision.warnings, patch=decision.patch or None
    )
    reason = "; ".join((decision.reason, *decision.warnings))
    return answer, "injected" if decision.inject else "skipped", reason


def _finish(
    plane: ControlPlane,
    review: AdmissionReview,
    *,
    webhook: str,
    decision: str,
    messages: list[str],
    started: float,
) -> None:
    elapsed = time.perf_counter() - started
    plane.metrics.count_admission(operation=review.operation, kind=review.kind, decision=decision)
    plane.metrics.admission_duration.labels(webhook=webhook).observe(elapsed)
    logs.emit(
        logs.DECISION,
        {
            "webhook": webhook,
            "uid": review.uid,
            "operation": review.operation,
            "kind": review.kind,
            "namespace": review.namespace,
            "name": review.name,
            "user": review.username,
            "dryRun": review.dry_run,
            "decision": decision,
            "messages": messages,
            "duration_ms": round(elapsed * 1000, 3),
        },
    )


def _serving_ca(path: Path | None) -> str:
    """The serving CA for injected proxies, read at every injection: the chart's certificate
    Job renews it in the mounted Secret, and a pod must get the CA in use when it starts. An
    unreadable file injects none (the proxy then trusts the mesh CA) and says so in the log."""
    if path is None:
        return ""
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        logging.getLogger(logs.SERVER).error(
            "--serving-ca %s: %s; proxies injected now verify the control plane with the mesh CA",
            path,
            exc,
        )
        return ""
