"""What proxies talk to: the MeshPolicy (long poll), their certificates, their endpoints.

- `GET /mesh/v1/policy` answers the MeshPolicy JSON with `ETag: "<hash>"` to a caller that proves
  who it is (`PolicyReaders`): a workload, with the token it gets certificates with, or the
  holder of the local admin token; anyone else gets 401 before anything is read. With
  `If-None-Match: "<hash>"` it waits (long poll) until the policy changes or `?timeout=` seconds
  pass (at most SMI_WEBHOOK_LONG_POLL_SECONDS), then 304. Waiting requests hold a gunicorn
  thread, so each worker lets at most half its threads wait; past that a poll gets its answer at
  once, with `Retry-After: 1`.
  `If-None-Match: *` is a 304 at once (RFC 9110: it matches any current policy).
- `POST /mesh/v1/certificates` signs a CSR for the identity the caller proves (bootstrap token
  or ServiceAccount token as `Authorization: Bearer`); a CSR for any other identity is 403, and
  a caller that proves none is 401, counted and logged (the reason, never the token).
  A ServiceAccount token the API server could not review now (unreachable, throttling, too
  slow, or this worker's reviews all in flight: `ReviewUnavailable`) is 503 with
  `Retry-After: 1` on every route here: the caller did nothing wrong.
- `POST` / `DELETE /mesh/v1/endpoints` registers or removes the caller's inbound address (an IP
  literal) for the services it backs (DNS-1123 names, local mode); services must be in the
  caller's own namespace. A registration is a lease of `ttl_seconds`, renewed by posting it
  again (`ControlPlane.expire_endpoints` drops the ones left to lapse).

Request bodies (certificates, endpoints) are at most MAX_BODY bytes (413 past it).

Why the policy is not public: it is the mesh's whole authorization graph — every identity,
which may call which, on which routes — and the address of every registered endpoint. That is
a map for an attacker already inside the network, and Istio's xDS and Linkerd's destination API
both authenticate the proxies they serve it to. Every workload may read all of it (a proxy
needs every service it may call, and the compiler does not scope it per workload).
"""

from __future__ import annotations

import io
import ipaddress
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, NoReturn, overload
from urllib.parse import parse_qsl

from cryptography import x509
from flask import Blueprint, Response, abort, current_app, jsonify, request

from smi.identity import Identity
from smi.pki import WORKLOAD_TTL, PKIError, not_after
from smi.store.base import EndpointRecord, StoreError
from smi.validation.names import is_label
from webhook import logs
from webhook.auth import AuthError, ReviewUnavailable, bearer_token
from webhook.plane import ControlPlane, View, current_plane
from webhook.reviews import BadReview, read_json
from webhook.wsgiloop import PARKED

if TYPE_CHECKING:
    from webhook.apis import LocalAdmin

bp = Blueprint("mesh", __name__, url_prefix="/mesh/v1")
MAX_BODY = 64 * 1024
NO_TOKEN = "missing `Authorization: Bearer <token>` (bootstrap or ServiceAccount token)"  # noqa: S105
READERS = "smictl.mesh.readers"  # app.extensions: the PolicyReaders
# environ: who the caller was found to be on the event loop, before the app ran — by
# `LongPolls.parks` (a parked poll) or by `webhook.app.Inline` (a request run on the loop):
# a reader (str), or the AuthError to answer. One key for both: `PolicyReaders.of` trusts it.
# A client cannot set it: headers become HTTP_* keys only (`wsgiloop.HttpProtocol._environ`).
PARKED_READER = "smictl.policy_reader"
LOCAL_ADMIN = "local-admin"  # the reader the admin token proves (as webhook.apis.ADMIN)


POLICY_PATH = "/mesh/v1/policy"
Wants = Literal["certificate", "endpoint", "policy"]  # what an authenticated caller asks for


class PolicyReaders:
    """Who may read the MeshPolicy: a workload proving its identity with the token it gets its
    certificate with (bootstrap token, or ServiceAccount token by TokenReview), or, in local
    mode, the holder of the admin token (an operator's `curl`). `who` names the reader for the
    decision log, or raises AuthError with the reason (ReviewUnavailable when the API server
    could not review a ServiceAccount token)."""

    def __init__(self, plane: ControlPlane, admin: LocalAdmin | None) -> None:
        self.plane = plane
        self.admin = admin

    @overload
    def who(self, header: str, *, wait: Literal[True] = True) -> str: ...
    @overload
    def who(self, header: str, *, wait: bool) -> str | None: ...

    def who(self, header: str, *, wait: bool = True) -> str | None:
        """The reader `header` (the Authorization value) proves: `local-admin` or a SPIFFE ID.
        With `wait=False` (on the event loop) None when only a call to the API server could
        tell (a TokenReview not in the cache): the request then takes the path that may wait.
        """
        token = bearer_token(header)
        if token is None:
            raise AuthError(NO_TOKEN)
        if self.admin is not None and self.admin.refusal(header) is None:
            return LOCAL_ADMIN
        authenticator = self.plane.authenticator
        if authenticator is None:
            raise AuthError(
                "the bearer token is not this control plane's admin token, and no workload "
                "token can be checked here (local mode needs the mesh CA)"
            )
        try:
            identity = authenticator.authenticate(token) if wait else authenticator.peek(token)
        except AuthError as exc:
            if self.admin is None or self.admin.digest is None:
                raise
            raise AuthError(f"{exc}; it is not this control plane's admin token either") from exc
        return None if identity is None else identity.spiffe_id

    def of(self, environ: dict[str, Any]) -> str:
        """The reader of a request, as the route answering it must see it. The one found on
        the loop (`PARKED_READER`) is trusted as found: the request runs on the loop because
        no call was needed then, and authenticating again here (a cached review that expired
        meanwhile) would make that call on the loop, stalling every connection of the
        worker. A request without it runs in the pool, where `who` may wait. Raises AuthError
        (401) or ReviewUnavailable (503)."""
        found = environ.get(PARKED_READER)
        if isinstance(found, AuthError):
            raise AuthError(str(found))
        if isinstance(found, str):
            return found
        return self.who(environ.get("HTTP_AUTHORIZATION", ""))


def policy_readers() -> PolicyReaders:
    readers: PolicyReaders = current_app.extensions[READERS]
    return readers


@bp.get("/policy")
def policy() -> Response:
    plane = current_plane()
    parked = request.environ.get(PARKED)
    # Before anything else, as the local store API does: a refused caller learns nothing, not
    # even the ETag (which says when the policy changes). A parked poll was authenticated on
    # the loop before it was parked (`LongPolls.parks`), and `of` reads what was found there.
    try:
        reader = policy_readers().of(request.environ)
    except AuthError as exc:
        plane.metrics.policy_reads.labels(result="unauthenticated").inc()
        _unauthenticated(plane, str(exc), wants="policy")
    except ReviewUnavailable as exc:
        plane.metrics.policy_reads.labels(result="unavailable").inc()
        _unavailable(str(exc), wants="policy")
    plane.metrics.policy_reads.labels(
        result=LOCAL_ADMIN if reader == LOCAL_ADMIN else "workload"
    ).inc()
    if parked is not None:  # parked on the loop and woken (or timed out, or shutting down)
        view = plane.latest_view()
        if view.etag == parked[0]:
            return _tag(Response(status=304), view)
        return _tag(Response(view.policy_json, mimetype="application/json"), view)
    view = plane.view()
    wanted = view.etag
    if_none_match = request.headers.get("If-None-Match", "")
    if if_none_match.strip() == "*":
        # RFC 9110 §13.1.2: `*` is false whenever a current representation exists, and one
        # always does. Nothing to wait for either (every etag matches it): 304 now, with the
        # ETag to poll with.
        return _tag(Response(status=304), view)
    if _listed(if_none_match, wanted):
        view, waited = _long_poll(plane, wanted)
        if view.etag == wanted:
            response = Response(status=304)
            if not waited:
                response.headers["Retry-After"] = "1"
            return _tag(response, view)
    return _tag(Response(view.policy_json, mimetype="application/json"), view)


def _long_poll(plane: ControlPlane, etag: str) -> tuple[View, bool]:
    timeout = _timeout(plane.settings.long_poll_seconds)
    gate = plane.long_polls
    if not gate.acquire(blocking=False):
        return plane.view(), False
    try:
        return plane.wait_for_policy(etag, timeout=timeout), True
    finally:
        gate.release()


def _timeout(limit: float) -> float:
    raw = request.args.get("timeout", "")
    asked = _seconds(raw, limit)
    if asked is None:
        abort(400, f"timeout={raw!r} is not a number of seconds")
    return asked


def _seconds(raw: str, limit: float) -> float | None:
    try:
        asked = float(raw) if raw else limit
    except ValueError:
        return None
    return max(0.0, min(asked, limit))


class LongPolls:
    """The app's `webhook.wsgiloop.Park` hook: lets `LoopWorker` park waiting long polls on its
    event loop instead of in a thread each. `policy()` answers them once woken (`PARKED`)."""

    def __init__(self, plane: ControlPlane, readers: PolicyReaders) -> None:
        self.plane = plane
        self.readers = readers

    def parks(self, environ: dict[str, Any]) -> tuple[str, float] | None:
        """(etag, timeout) when this is a `GET /mesh/v1/policy` from a reader who proves who it
        is without a call (`PolicyReaders.who(wait=False)`) whose If-None-Match lists the
        current etag with a timeout above 0: the requests `policy()` would hold. On the loop:
        reads the last compiled view only (a stale one is fine: the watcher compiles the new
        revision and wakes the poll if its etag moved). Anything else — a bad `timeout` (400),
        HEAD, a caller to refuse (401) or to look up (TokenReview) — takes the ordinary path.
        A parked poll is not authenticated again when it is answered: as any request, it is
        authorized once, when it arrives (`PARKED_READER`, the key `Inline` sets too)."""
        wait = self._wait(environ)
        if wait is None:
            return None
        try:
            reader = self.readers.who(environ.get("HTTP_AUTHORIZATION", ""), wait=False)
        except AuthError:
            return None
        if reader is None:
            return None
        environ[PARKED_READER] = reader
        return wait

    def _wait(self, environ: dict[str, Any]) -> tuple[str, float] | None:
        """(etag, timeout) of a policy GET that would wait now, else None."""
        if environ.get("REQUEST_METHOD") != "GET" or environ.get("PATH_INFO") != POLICY_PATH:
            return None
        if environ.get("CONTENT_LENGTH", "0") not in ("", "0"):
            # A policy GET has no body; one that does would be kept, whole, while it waits
            # (up to 16 MiB each, and a thousand may be parked): it takes the thread path.
            return None
        header = environ.get("HTTP_IF_NONE_MATCH")
        if header is None:
            return None
        etag = self.plane.latest_view().etag
        if not _listed(header, etag):
            return None
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        raw = next((value for key, value in query if key == "timeout"), "")
        timeout = _seconds(raw, self.plane.settings.long_poll_seconds)
        if timeout is None or timeout <= 0:
            return None
        return etag, timeout

    def watch(self, etag: str, timeout: float) -> str:
        """What a waiting poll did in its thread, once per worker: store changes and lease
        checks, compiles off the loop; a revision with the same content is no change."""
        return self.plane.wait_for_policy(etag, timeout=timeout).etag


def _listed(header: str, etag: str) -> bool:
    """Whether an If-None-Match header lists `etag` (weak comparison, as RFC 9110 asks for
    If-None-Match: W/ and quotes do not count). The header is a list and the client's tag
    may be any of its members: reading only the first answered such a poll at once, with
    the whole policy, instead of holding it."""
    return any(tag.strip().removeprefix("W/").strip('"') == etag for tag in header.split(","))


def _tag(response: Response, view: View) -> Response:
    response.headers["ETag"] = f'"{view.etag}"'
    response.headers["X-Smictl-Revision"] = str(view.revision)
    response.headers["Cache-Control"] = "no-cache"
    return response


# --- certificates -------------------------------------------------------------------------------


@bp.post("/certificates")
def certificates() -> tuple[Response, int]:
    plane = current_plane()
    if plane.ca is None:
        abort(503, "certificate signing is not configured (SMI_WEBHOOK_MESH_CA_CERT_FILE/KEY_FILE)")
    caller = _caller(plane, wants="certificate")
    body = _body()
    csr_pem = body.get("csr")
    if not isinstance(csr_pem, str) or "BEGIN CERTIFICATE REQUEST" not in csr_pem:
        abort(400, "csr: expected a PEM certificate request")
    others = _other_names(csr_pem.encode(), caller.spiffe_id)
    if others:
        requested = ", ".join(others)
        plane.metrics.certificates_issued.labels(result="refused").inc()
        _audit("certificate_refused", caller=caller, requested=requested)
        abort(403, f"CSR asks for {requested}, but the caller proved {caller.spiffe_id}")
    ttl = _ttl(body.get("ttlSeconds"))
    try:
        plane.ca.check_valid()
    except PKIError as exc:  # the control plane's problem, not the caller's: not a 400
        abort(503, str(exc))
    try:
        cert_pem = plane.ca.sign_workload_csr(csr_pem.encode(), identity=caller, ttl=ttl)
    except PKIError as exc:
        plane.metrics.certificates_issued.labels(result="invalid").inc()
        abort(400, f"CSR refused: {exc}")
    plane.metrics.certificates_issued.labels(result="issued").inc()
    _audit("certificate_issued", caller=caller, requested=caller.spiffe_id)
    return jsonify(
        identity=caller.spiffe_id,
        certificate=cert_pem.decode(),
        caCertificate=plane.ca.cert_pem().decode(),
        expiresAt=not_after(cert_pem).isoformat(),
    ), 201


def _other_names(csr_pem: bytes, own: str) -> list[str]:
    """The names the CSR asks for beside the caller's own SPIFFE ID (URI SANs first, then any
    other kind, in its order), so that a CSR claiming another workload's identity is a 403
    with its `certificate_refused` line even when it names the caller's too.

    Read before the signature is checked, only to tell "another identity" (403) from a bad
    CSR (400): a SAN extension given twice, or one that does not decode, gives none here, and
    pki refuses the CSR with its reason."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (
        ValueError,
        x509.ExtensionNotFound,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ):
        return []
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    rest = [str(name.value) for name in san if not isinstance(name, x509.UniformResourceIdentifier)]
    return list(dict.fromkeys(name for name in [*uris, *rest] if name != own))


def _ttl(raw: Any) -> timedelta:
    if raw is None:
        return WORKLOAD_TTL
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 60:
        abort(400, "ttlSeconds: expected an integer of at least 60")
    return min(timedelta(seconds=min(raw, int(WORKLOAD_TTL.total_seconds()))), WORKLOAD_TTL)


# --- endpoints ----------------------------------------------------------------------------------


@bp.post("/endpoints")
def register_endpoint() -> tuple[Response, int]:
    plane = current_plane()
    caller = _caller(plane, wants="endpoint")
    body = _body()
    address, port = _address(body)
    keys = _services(body.get("services", []), namespace=caller.namespace)
    foreign = [k for k in keys if k.split("/", 1)[0] != caller.namespace]
    if foreign:
        abort(
            403,
            f"{caller.short} may back services of namespace {caller.namespace} only, "
            f"not {', '.join(foreign)}",
        )
    record = EndpointRecord(
        address=address, port=port, identity=caller.spiffe_id, services=tuple(sorted(set(keys)))
    )
    plane.expire_endpoints()  # a lapsed lease on this address must not refuse its new owner
    try:
        revision = plane.store.register_endpoint(record)
    except StoreError as exc:
        code = 403 if exc.diagnostics[0].code == "SMI7008" else 405
        abort(code, exc.diagnostics[0].message)
    _audit("endpoint_registered", caller=caller, requested=f"{address}:{port}")
    return jsonify(
        revision=revision,
        identity=caller.spiffe_id,
        services=list(record.services),
        ttl_seconds=plane.settings.endpoint_ttl_seconds,
    ), 200


@bp.delete("/endpoints")
def deregister_endpoint() -> tuple[Response, int]:
    plane = current_plane()
    caller = _caller(plane, wants="endpoint")
    address, port = _address(_body())
    try:
        revision = plane.store.deregister_endpoint(
            address=address, port=port, identity=caller.spiffe_id
        )
    except StoreError as exc:
        code = 403 if exc.diagnostics[0].code == "SMI7008" else 405
        abort(code, exc.diagnostics[0].message)
    _audit("endpoint_deregistered", caller=caller, requested=f"{address}:{port}")
    return jsonify(revision=revision), 200


def _address(body: dict[str, Any]) -> tuple[str, int]:
    """The inbound `address` (an IPv4 or IPv6 literal, in its canonical form so that one
    listener has one key) and `port`. Every proxy dials what is registered here: a host name
    would be resolved by each of them (and point wherever its DNS says), and anything else
    is not an address at all."""
    address, port = body.get("address"), body.get("port")
    if not isinstance(address, str) or not address:
        abort(400, "address: expected the proxy's inbound IP address")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        abort(400, "port: expected an integer from 1 to 65535")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        abort(400, f"address: {_shown(address)} is not an IPv4 or IPv6 address")
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        abort(400, f"address: {_shown(address)} has a zone, which means nothing to other hosts")
    return str(ip), port


def _services(raw: Any, *, namespace: str) -> list[str]:
    """`services` as `ns/name` keys: each `name` (the caller's namespace) or `ns/name`, both
    DNS-1123 labels, as Service names and namespaces are; 400 naming the first bad one."""
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        abort(400, "services: expected a list of service names (`name` or `namespace/name`)")
    keys = []
    for i, text in enumerate(raw):
        ns, slash, name = text.partition("/")
        if not slash:
            ns, name = namespace, text
        if not (is_label(ns) and is_label(name)):
            abort(
                400,
                f"services[{i}]: {_shown(text)} is not `name` or `namespace/name` made of "
                "DNS-1123 labels (lowercase letters, digits and '-', starting and ending "
                "alphanumeric, at most 63 characters each)",
            )
        keys.append(f"{ns}/{name}")
    return keys


def _shown(text: str) -> str:
    """A caller's value in a one-line error, cut short."""
    return repr(text if len(text) <= 64 else text[:64] + "...")


# --- shared -------------------------------------------------------------------------------------


def _caller(plane: ControlPlane, *, wants: Wants) -> Identity:
    """The identity the bearer token proves, or 401 (503 when the API server could not say).
    Every 401 leaves one decision-log line with the reason (never the token: it is a
    credential), and a refused certificate request counts in
    `smictl_certificates_issued_total{result="unauthenticated"}`: a fleet presenting expired or
    forged tokens shows on a dashboard, not only in the logs."""
    token = bearer_token(request.headers.get("Authorization", ""))
    if token is None:
        _unauthenticated(plane, NO_TOKEN, wants=wants)
    if plane.authenticator is None:
        abort(503, "no authenticator is configured (local mode needs the mesh CA)")
    try:
        return plane.authenticator.authenticate(token)
    except AuthError as exc:
        _unauthenticated(plane, str(exc), wants=wants)
    except ReviewUnavailable as exc:
        _unavailable(str(exc), wants=wants)


def _unauthenticated(plane: ControlPlane, reason: str, *, wants: Wants) -> NoReturn:
    if wants == "certificate":
        plane.metrics.certificates_issued.labels(result="unauthenticated").inc()
    # RFC 9110 §11.6.1: a 401 names the scheme it wants.
    _refuse(401, reason, event=f"{wants}_unauthenticated",
            headers={"WWW-Authenticate": 'Bearer realm="smictl"'})  # fmt: skip


def _unavailable(reason: str, *, wants: Wants) -> NoReturn:
    """503 with `Retry-After: 1`: the token could not be checked now (not a 401, which a proxy
    would log as its own fault). One decision-log line, as a 401 leaves."""
    _refuse(503, reason, event=f"{wants}_review_unavailable", headers={"Retry-After": "1"})


def _refuse(status: int, reason: str, *, event: str, headers: dict[str, str]) -> NoReturn:
    """One decision-log line (the reason, never the token), then the JSON error."""
    logs.emit(
        logs.DECISION,
        {"event": event, "method": request.method, "remote": request.remote_addr,
         "reason": reason},
    )  # fmt: skip
    response = jsonify(error=reason, code=status)
    response.status_code = status
    response.headers.update(headers)
    abort(response)


def _body() -> dict[str, Any]:
    """The JSON request body, at most MAX_BODY bytes: a CSR or an endpoint registration is a
    few KiB. The limit is this route's own, not SMI_WEBHOOK_MAX_REVIEW_BYTES (reviews), so
    the refusal names it rather than a setting that would not change it."""
    body = request.stream.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        abort(413, f"request body exceeds {MAX_BODY} bytes, the most {request.path} accepts")
    try:
        return read_json(io.BytesIO(body), limit=MAX_BODY)
    except BadReview as exc:
        abort(400, str(exc))


def _audit(event: str, *, caller: Identity, requested: str) -> None:
    logs.emit(logs.DECISION, {"event": event, "caller": caller.spiffe_id, "subject": requested})
