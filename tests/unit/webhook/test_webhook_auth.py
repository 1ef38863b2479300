"""Bootstrap tokens and TokenReview: what a caller can prove, and what it cannot."""

from __future__ import annotations

from typing import Any

import pytest

from smi.identity import Identity
from smi.pki import CertificateAuthority
from webhook.auth import AuthError, BootstrapTokens, TokenReviewer, token_key

WEB = Identity.parse("shop/web")


def tokens(clock: float = 1_000_000.0, ca: CertificateAuthority | None = None) -> BootstrapTokens:
    key = token_key((ca or CertificateAuthority.create()).key)
    return BootstrapTokens(key=key, trust_domain="cluster.local", clock=lambda: clock)


def test_a_token_proves_exactly_its_identity() -> None:
    t = tokens()
    assert t.authenticate(t.issue(WEB)) == WEB


def test_the_key_follows_the_ca() -> None:
    ca = CertificateAuthority.create()
    assert token_key(ca.key) == token_key(
        CertificateAuthority.load(ca.cert_pem(), ca.key_pem()).key
    )
    issued = tokens(ca=ca).issue(WEB)
    with pytest.raises(AuthError, match="signature is invalid"):
        tokens().authenticate(issued)  # another CA: another key


def test_expired_tampered_and_foreign_tokens_are_refused() -> None:
    ca = CertificateAuthority.create()
    issued = tokens(ca=ca).issue(WEB, ttl_seconds=60)
    with pytest.raises(AuthError, match="expired"):
        tokens(clock=1_000_000.0 + 61, ca=ca).authenticate(issued)
    prefix, _payload, mac = issued.split(".")
    other = tokens(ca=ca).issue(Identity.parse("shop/admin")).split(".")[1]
    with pytest.raises(AuthError, match="signature"):
        tokens(ca=ca).authenticate(f"{prefix}.{other}.{mac}")  # swapped claims, old MAC
    for junk in ("", "Bearer x", "smi1.only-two", "smi1.!!.??", "jwt.a.b"):
        with pytest.raises(AuthError):
            tokens(ca=ca).authenticate(junk)
    foreign = BootstrapTokens(
        key=token_key(ca.key), trust_domain="example.org", clock=lambda: 1_000_000.0
    )
    with pytest.raises(AuthError, match="trust domain"):
        foreign.authenticate(tokens(ca=ca).issue(WEB))


def review_status(username: str, *, authenticated: bool = True) -> dict[str, Any]:
    return {"authenticated": authenticated, "user": {"username": username}, "audiences": ["smictl"]}


def test_token_review_maps_service_accounts_and_caches() -> None:
    calls: list[str] = []

    def review(token: str) -> dict[str, Any]:
        calls.append(token)
        return review_status("system:serviceaccount:shop:web")

    reviewer = TokenReviewer(review, trust_domain="cluster.local")
    assert reviewer.authenticate("tok") == WEB
    assert reviewer.authenticate("tok") == WEB
    assert calls == ["tok"]


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (review_status("system:serviceaccount:shop:web", authenticated=False), "rejected"),
        (review_status("kubernetes-admin"), "not a ServiceAccount"),
        (review_status("system:serviceaccount:Bad_NS:web"), "not an identity"),
    ],
)
def test_token_review_refusals(status: dict[str, Any], reason: str) -> None:
    reviewer = TokenReviewer(lambda _: status, trust_domain="cluster.local")
    with pytest.raises(AuthError, match=reason):
        reviewer.authenticate("tok")


def test_the_review_cache_stays_bounded() -> None:
    reviewer = TokenReviewer(
        lambda _: review_status("system:serviceaccount:shop:web"),
        trust_domain="cluster.local",
        max_entries=3,
    )
    for i in range(10):
        assert reviewer.authenticate(f"token-{i}") == WEB
    assert len(reviewer._cache) <= 3
