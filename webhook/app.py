"""The application factory (the flask tutorial's `create_app`): settings in, a configured app out.

One blueprint per concern — admission (`/validate`, `/mutate`), conversion (`/convert`), mesh
distribution (`/mesh/v1/...`), the OPA Data API (`/v1/data/...`), the local store API
(`/apis/...`, local mode only) and health (`/healthz`, `/readyz`, `/metrics`). Every error leaves
as JSON with a one-line reason; an unexpected exception is logged with its traceback and answered
500 without one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from smi.errors import SMIError
from smi.store.base import Store
from webhook import logs
from webhook.plane import EXTENSION, ControlPlane, load_ca, record_expiry
from webhook.settings import Settings
from webhook.wsgiloop import INLINE_ATTR, PARK_ATTR, PARKED

QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

# Requests that never wait on anything outside the process: the event-loop worker answers them
# on its loop. The rest (long polls, store writes, certificate signing with TokenReview) may
# wait, and run in its thread pool.
_INLINE_POSTS = frozenset({"/validate", "/mutate", "/mutate/namespace-opted-in", "/convert"})
_INLINE_GETS = QUIET_PATHS


def runs_inline(environ: dict[str, Any]) -> bool:
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
    if method == "POST":
        return path in _INLINE_POSTS or path.startswith("/v1/data")
    if method == "GET":
        if path == "/mesh/v1/policy":
            return "HTTP_IF_NONE_MATCH" not in environ  # with it, a long poll
        return path in _INLINE_GETS
    return False


def create_app(
    settings: Settings | None = None, *, store: Store | None = None, policies: Any = None
) -> Flask:
    """Build the control plane app. `store` and `policies` (a PolicySet) override what the
    settings select; tests and benchmarks hand in ones they prepared."""
    settings = settings if settings is not None else Settings.from_env()
    logs.configure()
    app = Flask("webhook")
    app.config["JSON_SORT_KEYS"] = False
    plane = build_plane(settings, store=store, policies=policies)
    app.extensions[EXTENSION] = plane
    _register_blueprints(app, settings)
    _register_hooks(app)
    setattr(app, INLINE_ATTR, runs_inline)  # for webhook.worker.LoopWorker
    from webhook.mesh import LongPolls

    setattr(app, PARK_ATTR, LongPolls(plane))  # LoopWorker parks waiting long polls on its loop
    plane.view()  # compile once now: /readyz turns ready and the first review pays nothing
    return app


def build_plane(
    settings: Settings, *, store: Store | None = None, policies: Any = None
) -> ControlPlane:
    from webhook.metrics import Metrics
    from webhook.policies import load_policies

    metrics = Metrics.create()
    ca = load_ca(settings)
    if ca is not None:
        record_expiry(metrics, name="mesh-ca", cert_pem=ca.cert_pem())
    if settings.cert_file is not None and settings.cert_file.is_file():
        record_expiry(metrics, name="serving", cert_pem=settings.cert_file.read_bytes())
    api_client = None
    if store is None:
        store, api_client = open_store(settings)
    return ControlPlane(
        settings=settings,
        store=store,
        policies=policies
        if policies is not None
        else load_policies(settings.policies, include_shipped=settings.shipped_policies),
        metrics=metrics,
        ca=ca,
        authenticator=_authenticator(settings, ca=ca, api_client=api_client),
    )


def open_store(settings: Settings) -> tuple[Store, Any]:
    """The backend the settings select: Kubernetes with a kubeconfig, else local SQLite."""
    if settings.kubernetes:
        from smi.store.kubernetes import KubernetesStore, api_client_for

        api_client = api_client_for(settings.kubeconfig or "")
        kstore = KubernetesStore(api_client)
        kstore.start()
        return kstore, api_client
    from smi.store.sqlite import SQLiteStore

    return SQLiteStore(settings.store_path()), None


def _authenticator(settings: Settings, *, ca: Any, api_client: Any) -> Any:
    from webhook.auth import BootstrapTokens, TokenReviewer, kubernetes_token_review, token_key

    if api_client is not None:
        review = kubernetes_token_review(api_client, audience="smictl")
        return TokenReviewer(review, trust_domain=settings.trust_domain)
    if ca is not None:
        return BootstrapTokens(key=token_key(ca.key), trust_domain=settings.trust_domain)
    return None


def _register_blueprints(app: Flask, settings: Settings) -> None:
    from webhook import admission, apis, conversion, health, mesh, opa

    app.register_blueprint(health.bp)
    app.register_blueprint(admission.bp)
    app.register_blueprint(conversion.bp)
    app.register_blueprint(mesh.bp)
    app.register_blueprint(opa.bp)
    if not settings.kubernetes:
        app.register_blueprint(apis.bp)


def _register_hooks(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        # A poll parked on the event loop is timed from when it was parked, as a poll that
        # waited in a thread is: the access log shows how long it waited.
        parked = request.environ.get(PARKED)
        g.started = parked[1] if parked is not None else time.perf_counter()

    @app.after_request
    def _access_log(response: Response) -> Response:
        if request.path not in QUIET_PATHS:
            elapsed = time.perf_counter() - g.get("started", time.perf_counter())
            logs.emit(
                logs.ACCESS,
                {
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 3),
                    "remote": request.remote_addr,
                    "bytes": response.calculate_content_length(),
                },
            )
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        code = exc.code or 500
        return jsonify(error=exc.description or exc.name, code=code), code

    @app.errorhandler(SMIError)
    def _smi_error(exc: SMIError) -> tuple[Response, int]:
        return jsonify(
            error=exc.diagnostics[0].message,
            diagnostics=[d.to_json() for d in exc.diagnostics],
        ), 400

    @app.errorhandler(Exception)
    def _internal(exc: Exception) -> tuple[Response, int]:
        logging.getLogger(logs.SERVER).error(
            "internal error",
            exc_info=exc,
            extra={
                "fields": {
                    "event": "internal_error",
                    "path": request.path,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            },
        )
        return jsonify(error="internal error; the control plane log has the details", code=500), 500
