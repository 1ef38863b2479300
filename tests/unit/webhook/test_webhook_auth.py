"""Bootstrap tokens and TokenReview: what a caller can prove, and what it cannot."""

from __future__ import annotations

import threading
import time
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


def _reviewer(answers: dict[str, bool], asked: list[str], *, seconds: float) -> TokenReviewer:
    def review(token: str) -> dict[str, Any]:
        asked.append(token)
        if not answers.get(token):
            return {"authenticated": False, "error": "token revoked"}
        return {"authenticated": True, "audiences": ["smictl"],
                "user": {"username": "system:serviceaccount:shop:web"}}  # fmt: skip

    return TokenReviewer(review, trust_domain="cluster.local", cache_seconds=seconds)


def _until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_peek_reads_the_cache_and_reviews_a_late_hit_again_in_the_background() -> None:
    """A proxy polls every ~25 s and reviews live 60 s: without a refresh, one poll a minute
    would miss on the loop and hold a pool thread for its whole wait."""
    answers, asked = {"tok": True}, []
    reviewer = _reviewer(answers, asked, seconds=0.6)
    assert reviewer.peek("tok") is None and asked == []  # never a call from peek itself
    assert reviewer.authenticate("tok").short == "shop/web" and asked == ["tok"]
    assert reviewer.peek("tok") is not None and asked == ["tok"]  # young: no review
    time.sleep(0.35)  # past half its life
    assert reviewer.peek("tok") is not None  # still answered from the cache, at once
    _until(lambda: asked == ["tok", "tok"])
    time.sleep(0.4)  # past the first review's end: alive thanks to the second
    assert reviewer.peek("tok") is not None


def _refused(reviewer: TokenReviewer, bearer: str) -> bool:
    try:
        reviewer.peek(bearer)
    except AuthError:
        return True
    return False


def test_a_token_refused_on_its_background_review_leaves_the_cache() -> None:
    answers, asked = {"tok": True}, []
    reviewer = _reviewer(answers, asked, seconds=0.6)
    reviewer.authenticate("tok")
    answers["tok"] = False  # the ServiceAccount was deleted
    time.sleep(0.35)
    assert reviewer.peek("tok") is not None  # the last good review, while it lives
    # Refused on the loop from now on (the refusal is remembered), without another review.
    _until(lambda: _refused(reviewer, "tok"))
    with pytest.raises(AuthError, match="token revoked"):
        reviewer.authenticate("tok")
    assert asked == ["tok", "tok"]


def test_one_background_review_per_token_at_a_time() -> None:
    gate, asked = threading.Event(), []

    def review(token: str) -> dict[str, Any]:
        asked.append(token)
        if len(asked) > 1:
            gate.wait(5)
        return {"authenticated": True, "audiences": ["smictl"],
                "user": {"username": "system:serviceaccount:shop:web"}}  # fmt: skip

    reviewer = TokenReviewer(review, trust_domain="cluster.local", cache_seconds=0.6)
    reviewer.authenticate("tok")
    time.sleep(0.35)
    for _ in range(50):
        assert reviewer.peek("tok") is not None
    time.sleep(0.05)
    assert len(asked) == 2  # the first and one refresh, not fifty
    gate.set()
