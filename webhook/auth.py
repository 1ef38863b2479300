"""Who is calling: a workload proves its identity before it gets a certificate or registers an
endpoint.

Two authenticators, one interface (`authenticate(bearer) -> Identity`):
- `BootstrapTokens` (local mode): `smi1.<payload>.<mac>` tokens bound to one identity, signed with
  a key derived from the mesh CA key (HKDF), so `smictl certs token` and every gunicorn worker
  agree without sharing any state, and rotating the CA revokes every token.
- `TokenReviewer` (Kubernetes mode): the pod's projected ServiceAccount token (audience `smictl`)
  checked by the API server's TokenReview; `system:serviceaccount:<ns>:<sa>` becomes `ns/sa`.
Anything else is refused with `AuthError` (401), and owning an identity is all a token proves.

    Exception
     ├── AuthError          the caller proved nothing: 401, and a refused ServiceAccount token
     │                      is remembered for a few seconds (one review, not one per request)
     └── ReviewUnavailable  the API server could not say (unreachable, an HTTP error such as 429,
                            too slow, or this worker's reviews all in flight): 503 with
                            `Retry-After`, and a cached review is kept, not dropped
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from smi.identity import Identity, IdentityError

_log = logging.getLogger("smictl.server")

TOKEN_PREFIX = "smi1"  # noqa: S105 - a format marker, not a secret
_HKDF_INFO = b"smictl bootstrap token v1"
SA_PREFIX = "system:serviceaccount:"
# A TokenReview slower than this fails (ReviewUnavailable): it holds a pool thread meanwhile,
# and the proxy waiting on it retries sooner than a stalled API server would answer.
REVIEW_TIMEOUT_SECONDS = 5.0


class AuthError(Exception):
    """The caller did not prove an identity (HTTP 401)."""


class ReviewUnavailable(Exception):
    """The token could not be checked now (HTTP 503, `Retry-After`). Not an AuthError: the
    caller did nothing wrong, and a throttling API server must not look like revocation."""


class Authenticator(Protocol):
    def authenticate(self, bearer: str) -> Identity:
        """The identity the bearer token proves; raises AuthError, or ReviewUnavailable when
        the one who could tell did not answer."""
        ...

    def peek(self, bearer: str) -> Identity | None:
        """`authenticate` without waiting on anything outside the process (it runs on the
        control plane's event loop, for long polls): None when only a call could tell."""
        ...


def bearer_token(header: str) -> str | None:
    """The token of an Authorization value `Bearer <token>` (the scheme in any case, RFC 9110
    §11.1), or None: the one reading of the header for every route that asks for a token."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _unb64(text: str) -> bytes:
    """Canonical unpadded base64url only (RFC 4648 §5, as `_b64` writes it), else ValueError.

    `urlsafe_b64decode` is lenient: it drops characters outside the alphabet (`!!`), accepts
    `+` and `/`, padding, and non-zero bits in the last character, so many spellings decode to
    one MAC and a token could be altered and still pass. A token is one string: re-encoding
    what decoded must give it back, byte for byte."""
    if not _B64URL.issuperset(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not the canonical base64url of its bytes")
    return data


def token_key(ca_key: ec.EllipticCurvePrivateKey) -> bytes:
    """The MAC key of bootstrap tokens, derived from the mesh CA's private key."""
    der = ca_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(der)


@dataclass(frozen=True, slots=True)
class BootstrapTokens:
    """Issue and verify identity-bound bootstrap tokens (local mode)."""

    key: bytes
    trust_domain: str
    clock: Callable[[], float] = time.time

    def issue(self, identity: Identity, *, ttl_seconds: int = 24 * 3600) -> str:
        now = int(self.clock())
        claims = {"sub": identity.spiffe_id, "iat": now, "exp": now + ttl_seconds}
        body = f"{TOKEN_PREFIX}.{_b64(json.dumps(claims, sort_keys=True).encode())}"
        return f"{body}.{_b64(self._mac(body))}"

    def authenticate(self, bearer: str) -> Identity:
        prefix, _, rest = bearer.partition(".")
        payload, _, mac = rest.partition(".")
        if prefix != TOKEN_PREFIX or not payload or not mac:
            raise AuthError("not a smictl bootstrap token")
        try:
            given, raw = _unb64(mac), _unb64(payload)
        except ValueError as exc:
            raise AuthError("bootstrap token is malformed") from exc
        # The MAC first: nothing an unauthenticated caller wrote is parsed (a payload of
        # 3,000 nested lists made json.loads raise RecursionError: a 500 and a traceback).
        if not hmac.compare_digest(given, self._mac(f"{prefix}.{payload}")):
            raise AuthError("bootstrap token signature is invalid (another mesh CA?)")
        try:
            claims: Any = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise AuthError("bootstrap token is malformed") from exc
        if not isinstance(claims, dict) or int(claims.get("exp", 0)) < self.clock():
            raise AuthError("bootstrap token has expired")
        try:
            identity = Identity.parse(str(claims.get("sub", "")))
        except IdentityError as exc:
            raise AuthError(f"bootstrap token names no identity: {exc}") from exc
        if identity.trust_domain != self.trust_domain:
            raise AuthError(f"bootstrap token is for trust domain {identity.trust_domain}")
        return identity

    def peek(self, bearer: str) -> Identity:
        return self.authenticate(bearer)  # an HMAC and a clock: nothing to wait for

    def _mac(self, body: str) -> bytes:
        return hmac.new(self.key, body.encode(), hashlib.sha256).digest()


# Background reviews queued or running per worker, at most (TokenReviewer.peek).
MAX_REFRESHING = 64


class TokenReviewer:
    """Kubernetes mode: ask the API server whose ServiceAccount token this is.

    `review` sends one TokenReview and returns its `status` as a dict (or raises
    ReviewUnavailable); results are cached by the token's hash, so a restarting fleet does not
    flood the API: an identity for `cache_seconds`, a refusal for `refusal_seconds` (a flood of
    one bad token costs one review per `refusal_seconds`, not one per request). Both caches hold
    at most `max_entries`. At most `max_in_flight` reviews run at once for requests (each holds
    a pool thread for up to the review's timeout); past that a request is ReviewUnavailable at
    once rather than queue behind a slow API server.

    `peek` (on the event loop) reads the caches only; a hit past half its lifetime is reviewed
    again in the background (outside `max_in_flight`: its own two threads), so a proxy that
    polls more often than the cache lives is always known on the loop (its polls stay parked),
    and a token the API server stops accepting leaves the cache within `cache_seconds` as
    before. A background review the API server cannot make keeps the entry until it expires.
    """

    def __init__(
        self,
        review: Callable[[str], dict[str, Any]],
        *,
        trust_domain: str,
        audience: str = "smictl",
        cache_seconds: float = 60.0,
        refusal_seconds: float = 10.0,
        max_entries: int = 10_000,
        max_in_flight: int = 4,
    ) -> None:
        self._review = review
        self.trust_domain = trust_domain
        self.audience = audience
        self.cache_seconds = cache_seconds
        self.refusal_seconds = refusal_seconds
        self.max_entries = max_entries
        self.max_in_flight = max_in_flight
        self._cache: dict[str, tuple[float, Identity]] = {}
        self._refused: dict[str, tuple[float, str]] = {}  # digest -> (until, the reason)
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(max_in_flight)
        self._refreshing: set[str] = set()  # digests being reviewed again in the background
        self._refresher: ThreadPoolExecutor | None = None  # made on first use (after fork)

    def authenticate(self, bearer: str) -> Identity:
        digest = hashlib.sha256(bearer.encode()).hexdigest()
        hit = self._cached(digest, time.monotonic())
        if hit is not None:
            return hit
        if not self._in_flight.acquire(blocking=False):
            raise ReviewUnavailable(
                f"this worker already has {self.max_in_flight} TokenReviews in flight; retry"
            )
        try:
            identity = self._identity(bearer)
        except AuthError as exc:
            self._refuse(digest, str(exc))
            raise
        finally:
            self._in_flight.release()
        until = time.monotonic() + self.cache_seconds
        with self._lock:
            _put(self._cache, digest, (until, identity), limit=self.max_entries)
            self._refused.pop(digest, None)
        return identity

    def peek(self, bearer: str) -> Identity | None:
        """The cached review's identity, or None (a TokenReview is a call to the API server);
        AuthError for a token refused in the last `refusal_seconds`. A hit in the second half
        of its life is reviewed again meanwhile, off the caller's thread (at most one review
        per token at a time)."""
        digest = hashlib.sha256(bearer.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None and hit[0] <= now:
                hit = None
            stale = (
                hit is not None
                and hit[0] - now < self.cache_seconds / 2
                and digest not in self._refreshing
                # A slow API server must not grow a queue of reviews no one waits for: past
                # this many, a token is reviewed again when its entry lapses (the pool path).
                and len(self._refreshing) < MAX_REFRESHING
            )
            if stale:
                self._refreshing.add(digest)
                if self._refresher is None:
                    self._refresher = ThreadPoolExecutor(2, thread_name_prefix="token-review")
                refresher = self._refresher
        if stale:
            refresher.submit(self._refresh, bearer, digest)
        if hit is not None:
            return hit[1]
        return self._cached(digest, now)  # None, or a recent refusal raised again

    def _identity(self, bearer: str) -> Identity:
        return identity_from_review(
            self._review(bearer), trust_domain=self.trust_domain, audience=self.audience
        )

    def _refresh(self, bearer: str, digest: str) -> None:
        try:
            with self._lock:
                entry = self._cache.get(digest)
            if entry is None or entry[0] <= time.monotonic():
                return  # lapsed or evicted while queued: a request reviews it again, if any
            identity = self._identity(bearer)
        except AuthError as exc:  # refused now: the next request is refused without a call
            with self._lock:
                self._cache.pop(digest, None)
            self._refuse(digest, str(exc))
        except Exception as exc:  # ReviewUnavailable (the API server unreachable, throttling,
            # too slow) or the review's own fault: the entry lives out its time
            _log.warning("TokenReview refresh failed, the cached review is kept: %s", exc)
        else:
            with self._lock:
                if digest in self._cache:
                    self._cache[digest] = (time.monotonic() + self.cache_seconds, identity)
        finally:
            with self._lock:
                self._refreshing.discard(digest)

    def _refuse(self, digest: str, reason: str) -> None:
        until = time.monotonic() + self.refusal_seconds
        with self._lock:
            _put(self._refused, digest, (until, reason), limit=self.max_entries)

    def _cached(self, digest: str, now: float) -> Identity | None:
        """The identity of a live cached review, None for none; AuthError for a live refusal."""
        with self._lock:
            hit = self._cache.get(digest)
            refused = self._refused.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        if refused is not None and refused[0] > now:
            raise AuthError(refused[1])
        return None


_V = TypeVar("_V")


def _put(
    table: dict[str, tuple[float, _V]], key: str, entry: tuple[float, _V], *, limit: int
) -> None:
    """Store `entry` (its expiry first) unless `table` is full of live entries: tokens rotate,
    so the expired ones are forgotten first. Call with the owner's lock held."""
    if key not in table and len(table) >= limit:
        now = time.monotonic()
        for expired in [k for k, (until, _) in table.items() if until <= now]:
            del table[expired]
    if key in table or len(table) < limit:
        table[key] = entry


def identity_from_review(
    status: dict[str, Any], *, trust_domain: str, audience: str | None = None
) -> Identity:
    """The workload identity of an authenticated TokenReview status, or AuthError.

    With `audience`, the status must name it in `audiences`: a TokenReview server that is not
    audience-aware answers `authenticated` with no audiences for a token that is only valid for
    the API server itself (a legacy Secret-based token, a token minted for another audience);
    the TokenReview API reference asks a client that sent `spec.audiences` to check them. Only
    a token meant for smictl may obtain a certificate."""
    if not status.get("authenticated"):
        raise AuthError(f"token rejected by the API server: {status.get('error') or 'unknown'}")
    audiences = status.get("audiences") or []
    if audience is not None and (not isinstance(audiences, list) or audience not in audiences):
        raise AuthError(
            f"token is not for audience {audience!r} (TokenReview audiences: {audiences})"
        )
    username = str((status.get("user") or {}).get("username", ""))
    if not username.startswith(SA_PREFIX):
        raise AuthError(f"{username or 'the caller'} is not a ServiceAccount")
    ns, _, sa = username[len(SA_PREFIX) :].partition(":")
    try:
        return Identity.parse(f"{ns}/{sa}", trust_domain=trust_domain)
    except IdentityError as exc:
        raise AuthError(str(exc)) from exc


def kubernetes_token_review(
    api_client: Any, *, audience: str, timeout: float = REVIEW_TIMEOUT_SECONDS
) -> Callable[[str], dict[str, Any]]:
    """A `review` function for TokenReviewer that uses the kubernetes client.

    Only the review's answer refuses a token (`identity_from_review`); failing to get one —
    an HTTP error (429, 5xx, or 401/403: this control plane's own RBAC), a transport error, no
    answer within `timeout` seconds, an answer that is not a TokenReview — is
    ReviewUnavailable. Its message names the kind of failure only (the caller sees it); the
    log has the details."""
    import urllib3
    from kubernetes import client

    api = client.AuthenticationV1Api(api_client)

    def review(token: str) -> dict[str, Any]:
        body = client.V1TokenReview(
            spec=client.V1TokenReviewSpec(token=token, audiences=[audience])
        )
        try:
            result = api.create_token_review(body, _request_timeout=timeout)
        except client.ApiException as exc:
            reason = " ".join(str(exc.reason).split())  # an SSL error's reason spans lines
            _log.warning("TokenReview failed: HTTP %s %s", exc.status, reason)
            failure = f"HTTP {exc.status}" if exc.status else "a TLS error"
            raise ReviewUnavailable(f"TokenReview failed: {failure}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            _log.warning("TokenReview failed: %s: %s", type(exc).__name__, exc)
            raise ReviewUnavailable(f"TokenReview failed: {_failure(exc, timeout)}") from exc
        except ValueError as exc:  # an answer that is not a TokenReview (the client's models)
            _log.warning("TokenReview failed: %s", " ".join(str(exc).split()))
            raise ReviewUnavailable("TokenReview failed: its answer could not be read") from exc
        status = result.status
        if status is None:
            raise ReviewUnavailable("TokenReview returned no status")
        out: dict[str, Any] = api_client.sanitize_for_serialization(status)
        return out

    return review


def _failure(exc: Exception, timeout: float) -> str:
    """A transport failure in a few words (urllib3 wraps the cause in MaxRetryError)."""
    import urllib3

    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    refused = isinstance(cause, urllib3.exceptions.NewConnectionError)  # a TimeoutError too
    if isinstance(cause, urllib3.exceptions.TimeoutError | TimeoutError) and not refused:
        return f"no answer within {timeout:g} s"
    return f"the API server could not be reached ({type(cause).__name__})"
