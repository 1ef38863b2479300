"""Who is calling: a workload proves its identity before it gets a certificate or registers an
endpoint.

Two authenticators, one interface (`authenticate(bearer) -> Identity`):
- `BootstrapTokens` (local mode): `smi1.<payload>.<mac>` tokens bound to one identity, signed with
  a key derived from the mesh CA key (HKDF), so `smictl certs token` and every gunicorn worker
  agree without sharing any state, and rotating the CA revokes every token.
- `TokenReviewer` (Kubernetes mode): the pod's projected ServiceAccount token (audience `smictl`)
  checked by the API server's TokenReview; `system:serviceaccount:<ns>:<sa>` becomes `ns/sa`.
Anything else is refused with `AuthError` (401), and owning an identity is all a token proves.
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
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from smi.identity import Identity, IdentityError

_log = logging.getLogger("smictl.server")

TOKEN_PREFIX = "smi1"  # noqa: S105 - a format marker, not a secret
_HKDF_INFO = b"smictl bootstrap token v1"
SA_PREFIX = "system:serviceaccount:"


class AuthError(Exception):
    """The caller did not prove an identity (HTTP 401)."""


class Authenticator(Protocol):
    def authenticate(self, bearer: str) -> Identity:
        """The identity the bearer token proves; raises AuthError."""
        ...

    def peek(self, bearer: str) -> Identity | None:
        """`authenticate` without waiting on anything outside the process (it runs on the
        control plane's event loop, for long polls): None when only a call could tell."""
        ...


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


class TokenReviewer:
    """Kubernetes mode: ask the API server whose ServiceAccount token this is.

    `review` sends one TokenReview and returns its `status` as a dict; results are cached for
    `cache_seconds` keyed by the token's hash, so a restarting fleet does not flood the API.

    `peek` (on the event loop, for long polls) reads the cache only; a hit past half its
    lifetime is reviewed again in the background, so a proxy that polls more often than the
    cache lives is always known on the loop (its polls stay parked), and a token the API
    server stops accepting leaves the cache within `cache_seconds` as before.
    """

    def __init__(
        self,
        review: Callable[[str], dict[str, Any]],
        *,
        trust_domain: str,
        audience: str = "smictl",
        cache_seconds: float = 60.0,
        max_entries: int = 10_000,
    ) -> None:
        self._review = review
        self.trust_domain = trust_domain
        self.audience = audience
        self.cache_seconds = cache_seconds
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, Identity]] = {}
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()  # digests being reviewed again in the background
        self._refresher: ThreadPoolExecutor | None = None  # made on first use (after fork)

    def authenticate(self, bearer: str) -> Identity:
        digest = hashlib.sha256(bearer.encode()).hexdigest()
        now = time.monotonic()
        hit = self._cached(digest, now)
        if hit is not None:
            return hit
        identity = identity_from_review(
            self._review(bearer), trust_domain=self.trust_domain, audience=self.audience
        )
        with self._lock:
            if len(self._cache) >= self.max_entries:  # tokens rotate: forget the expired ones
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) < self.max_entries:
                self._cache[digest] = (now + self.cache_seconds, identity)
        return identity

    def peek(self, bearer: str) -> Identity | None:
        """The cached review's identity, or None (a TokenReview is a call to the API server).
        Only successes are cached, so a refused token is never refused here: it takes the
        path that calls. A hit in the second half of its life is reviewed again meanwhile,
        off the caller's thread (at most one review per token at a time)."""
        digest = hashlib.sha256(bearer.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is None or hit[0] <= now:
                return None
            stale = hit[0] - now < self.cache_seconds / 2 and digest not in self._refreshing
            if stale:
                self._refreshing.add(digest)
                if self._refresher is None:
                    self._refresher = ThreadPoolExecutor(2, thread_name_prefix="token-review")
                refresher = self._refresher
        if stale:
            refresher.submit(self._refresh, bearer, digest)
        return hit[1]

    def _refresh(self, bearer: str, digest: str) -> None:
        try:
            identity = identity_from_review(
                self._review(bearer), trust_domain=self.trust_domain, audience=self.audience
            )
        except AuthError:
            with self._lock:  # refused now: the next request asks again, and is refused
                self._cache.pop(digest, None)
        except Exception as exc:  # the API server unreachable: the entry lives out its time
            _log.warning("TokenReview refresh failed: %s", exc)
        else:
            with self._lock:
                if digest in self._cache:
                    self._cache[digest] = (time.monotonic() + self.cache_seconds, identity)
        finally:
            with self._lock:
                self._refreshing.discard(digest)

    def _cached(self, digest: str, now: float) -> Identity | None:
        with self._lock:
            hit = self._cache.get(digest)
        return hit[1] if hit is not None and hit[0] > now else None


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


def kubernetes_token_review(api_client: Any, *, audience: str) -> Callable[[str], dict[str, Any]]:
    """A `review` function for TokenReviewer that uses the kubernetes client."""
    from kubernetes import client

    api = client.AuthenticationV1Api(api_client)

    def review(token: str) -> dict[str, Any]:
        body = client.V1TokenReview(
            spec=client.V1TokenReviewSpec(token=token, audiences=[audience])
        )
        try:
            result = api.create_token_review(body)
        except client.ApiException as exc:
            raise AuthError(f"TokenReview failed: HTTP {exc.status} {exc.reason}") from exc
        status = result.status
        if status is None:
            raise AuthError("TokenReview returned no status")
        out: dict[str, Any] = api_client.sanitize_for_serialization(status)
        return out

    return review
