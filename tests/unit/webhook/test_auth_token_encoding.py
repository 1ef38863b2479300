"""A bootstrap token is one string: its MAC (and claims) must be the canonical unpadded
base64url `issue` writes. Python's `urlsafe_b64decode` also takes padding, the `+` and `/`
alphabet, characters outside any alphabet (dropped) and stray low bits in the last character,
so altered tokens authenticated as the original (acceptance audit of `smictl serve`)."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from smi.identity import Identity
from smi.pki import CertificateAuthority
from webhook.auth import AuthError, BootstrapTokens, token_key


@pytest.fixture(scope="module")
def tokens() -> BootstrapTokens:
    return BootstrapTokens(
        key=token_key(CertificateAuthority.create().key), trust_domain="cluster.local"
    )


@pytest.fixture(scope="module")
def good(tokens: BootstrapTokens) -> str:
    """A token whose MAC holds a `-` or `_`, so that its standard-alphabet spelling differs."""
    for i in range(1000):
        token = tokens.issue(Identity.parse(f"shop/web{i}"))
        if {"-", "_"} & set(token.split(".")[2]):
            return token
    raise AssertionError("no MAC with '-' or '_' in 1000 tokens")


def _mac(token: str, change: Callable[[str], str]) -> str:
    prefix, payload, mac = token.split(".")
    return f"{prefix}.{payload}.{change(mac)}"


def _last_bits(mac: str) -> str:
    """The same 32 bytes with the unused low bits of the last character set: 43 characters
    carry 258 bits, so the last one's low 2 bits are padding a lenient decoder ignores."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(mac[-1])
    return mac[:-1] + alphabet[last ^ 1]


ALTERED: dict[str, Callable[[str], str]] = {
    "padded": lambda m: m + "=",
    "padded twice": lambda m: m + "==",
    "standard alphabet": lambda m: (
        base64.b64encode(base64.urlsafe_b64decode(m + "=")).decode().rstrip("=")
    ),
    "junk inside": lambda m: m[:10] + "!!" + m[10:],
    "whitespace inside": lambda m: m[:10] + "  " + m[10:],
    "stray low bits": _last_bits,
}


@pytest.mark.parametrize("change", ALTERED.values(), ids=ALTERED.keys())
def test_an_altered_spelling_of_the_mac_does_not_authenticate(
    tokens: BootstrapTokens, good: str, change: Callable[[str], str]
) -> None:
    altered = _mac(good, change)
    assert altered != good
    with pytest.raises(AuthError, match="malformed"):
        tokens.authenticate(altered)


def test_an_altered_spelling_of_the_claims_does_not_authenticate(
    tokens: BootstrapTokens, good: str
) -> None:
    prefix, payload, mac = good.split(".")
    with pytest.raises(AuthError):
        tokens.authenticate(f"{prefix}.{payload}=.{mac}")


def test_the_token_as_issued_still_authenticates(tokens: BootstrapTokens, good: str) -> None:
    assert tokens.authenticate(good).spiffe_id.startswith("spiffe://cluster.local/ns/shop/sa/web")
