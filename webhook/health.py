"""`/healthz` (the process answers), `/readyz` (policies compiled and the store open and
synced), `/metrics` (Prometheus text, aggregated across gunicorn workers)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST

from webhook.plane import current_plane

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    plane = current_plane()
    if not plane.store.ready():
        return jsonify(status="not ready", reason="the store has not synced yet"), 503
    try:
        view = plane.view()
    except Exception as exc:  # readiness reports, it never raises
        return jsonify(status="not ready", reason=f"policy does not compile: {exc}"), 503
    # The revision (also in /metrics) says that something changed; the content hash is the
    # policy's ETag, which the policy route gives only to callers that prove who they are: it
    # would confirm a guessed policy and show each endpoint registering or lapsing.
    return jsonify(status="ready", revision=view.revision), 200


@bp.get("/metrics")
def metrics() -> Response:
    return Response(current_plane().metrics.render(), content_type=CONTENT_TYPE_LATEST)
