"""The application factory (the flask tutorial's `create_app`): settings in, a configured app out.

One blueprint per concern — admission (`/validate`, `/mutate`), conversion (`/convert`), mesh
distribution (`/mesh/v1/...`), the OPA Data API (`/v1/data/...`), the local store API
(`/apis/...`, local mode only, for the admin token's holder) and health (`/healthz`, `/readyz`,
`/metrics`). Every error leaves as JSON with a one-line reason; an unexpected exception is logged
with its traceback and answered 500 without one.
"""

from __future__ import annotations

import logging
import time
from typing import Any, NoReturn

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from smi.errors import SMIError, escaped_line
from smi.store.base import Store
from webhook import logs
from webhook.auth import AuthError
from webhook.mesh import PARKED_READER, PolicyReaders
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
    """Whether a request never waits on anything outside the process, whoever sent it."""
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
    if method == "POST":
        return path in _INLINE_POSTS
    if method == "GET":
        return path in _INLINE_GETS
    return False


class Inline:
    """The LoopWorker's predicate: `runs_inline`, and the routes whose caller must prove who it
    is (the Data API, a policy GET that is not a long poll) when that takes no call: a bootstrap
    or admin token, a cached TokenReview, or a caller to refuse. A review the cache lacks is a
    call to the API server, which must not stall the loop: such a request takes the pool.

    What it found is kept in `environ[PARKED_READER]` (the key `LongPolls.parks` sets for a
    parked poll), and the route trusts it (`PolicyReaders.of`): checking again when it runs
    could find the cached review gone, and make the call on the loop after all."""

    def __init__(self, readers: PolicyReaders) -> None:
        self.readers = readers

    def __call__(self, environ: dict[str, Any]) -> bool:
        if runs_inline(environ):
            return True
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        authenticated = (method == "POST" and path.startswith("/v1/data")) or (
            method == "GET" and path == "/mesh/v1/policy" and "HTTP_IF_NONE_MATCH" not in environ
        )
        if not authenticated:
            return False
        try:
            reader = self.readers.who(environ.get("HTTP_AUTHORIZATION", ""), wait=False)
        except AuthError as exc:
            environ[PARKED_READER] = exc  # answered 401 at once, with this reason
            return True
        if reader is None:
            return False
        environ[PARKED_READER] = reader
        return True


def create_app(
    settings: Settings | None = None, *, store: Store | None = None, policies: Any = None
) -> Flask:
    """Build the control plane app. `store` and `policies` (a PolicySet) override what the
    settings select; tests and benchmarks hand in ones they prepared.

    Without settings this is gunicorn's `webhook:create_app()` in a worker: settings come from
    SMI_WEBHOOK_*, and a worker that cannot build the app (a policy file changed after
    `serve`'s preflight, a store it cannot open) logs why in one line and stops the server,
    rather than gunicorn printing a traceback and failing every worker alike."""
    if settings is not None:
        return _build_app(settings, store=store, policies=policies)
    logs.configure()
    try:
        return _build_app(Settings.from_env(), store=store, policies=policies)
    except (SMIError, OSError) as exc:
        boot_failed(exc)


# gunicorn's Arbiter.APP_LOAD_ERROR: a worker exiting with it halts the master ("App failed to
# load"), where WORKER_BOOT_ERROR (a raised exception) logged a traceback first.
APP_LOAD_ERROR = 4


def boot_failed(exc: Exception) -> NoReturn:
    """Log why the app cannot be built, one line per problem, and exit the worker."""
    if isinstance(exc, SMIError):
        reasons = [d.format() for d in exc.diagnostics]
    else:
        where = f"{exc.filename}: " if isinstance(exc, OSError) and exc.filename else ""
        reasons = [escaped_line(f"{where}{getattr(exc, 'strerror', None) or exc}")]
    for reason in reasons:
        logs.emit(logs.SERVER, {"event": "boot_failed", "error": reason}, level=logging.ERROR)
    raise SystemExit(APP_LOAD_ERROR)


def _build_app(settings: Settings, *, store: Store | None, policies: Any) -> Flask:
    logs.configure()
    app = Flask("webhook")
    app.config["JSON_SORT_KEYS"] = False
    plane = build_plane(settings, store=store, policies=policies)
    app.extensions[EXTENSION] = plane
    _register_blueprints(app, plane)
    _register_hooks(app)
    if settings.client_ca_file is not None:
        _require_client_certificate(app, plane)
    from webhook.apis import EXTENSION as APIS
    from webhook.mesh import READERS, LongPolls

    readers = PolicyReaders(plane, admin=app.extensions.get(APIS))  # no admin in Kubernetes mode
    app.extensions[READERS] = readers
    setattr(app, INLINE_ATTR, Inline(readers))  # for webhook.worker.LoopWorker
    setattr(app, PARK_ATTR, LongPolls(plane, readers))  # LoopWorker parks long polls on its loop
    plane.view()  # compile once now: /readyz turns ready and the first review pays nothing
    return app


def build_plane(
    settings: Settings, *, store: Store | None = None, policies: Any = None
) -> ControlPlane:
    from webhook.metrics import Metrics
    from webhook.policies import policies_of

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
        policies=policies if policies is not None else policies_of(settings),
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


def _register_blueprints(app: Flask, plane: ControlPlane) -> None:
    from webhook import admission, apis, conversion, health, mesh, opa

    app.register_blueprint(health.bp)
    app.register_blueprint(admission.bp)
    app.register_blueprint(conversion.bp)
    app.register_blueprint(mesh.bp)
    app.register_blueprint(opa.bp)
    if not plane.settings.kubernetes:  # in a cluster the API server is the store, with its RBAC
        apis.install(
            app, token_file=plane.settings.admin_token_file, registry=plane.metrics.registry
        )


def _require_client_certificate(app: Flask, plane: ControlPlane) -> None:
    """Review routes answer only the API server's client certificate (webhook.callers)."""
    from webhook.callers import REVIEW_PATHS, ReviewCallers

    callers = ReviewCallers(plane.settings.client_names)

    @app.before_request
    def _review_caller() -> Response | None:
        if request.path not in REVIEW_PATHS:
            return None
        refused = callers.refusal(request.environ)
        if refused is None:
            return None
        label, reason = refused
        plane.metrics.review_callers_refused.labels(reason=label).inc()
        logs.emit(
            logs.DECISION,
            {"event": "review_caller_refused", "path": request.path,
             "remote": request.remote_addr, "reason": reason},
        )  # fmt: skip
        response = jsonify(error=reason, code=401)
        response.status_code = 401
        return response


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

    from webhook import opa

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        code = exc.code or 500
        if opa.serves(request.path):
            response, code = opa.opa_error(code, exc.description or exc.name)
        else:
            response = jsonify(error=exc.description or exc.name, code=code)
        # What the error says beside its page: a 405's `Allow` (RFC 9110 §15.5.6: a MUST), a
        # 401's `WWW-Authenticate`, a `Retry-After`. The page's own type is replaced by JSON.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, code

    @app.errorhandler(SMIError)
    def _smi_error(exc: SMIError) -> tuple[Response, int]:
        if opa.serves(request.path):
            return opa.opa_error(400, exc.diagnostics[0].format())
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
        reason = "internal error; the control plane log has the details"
        if opa.serves(request.path):
            return opa.opa_error(500, reason)
        return jsonify(error=reason, code=500), 500
