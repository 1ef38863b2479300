"""smi.identity's names are Kubernetes' DNS-1123 names, the same rule smi.validation checks
manifests with (one definition): a trust domain or ServiceAccount of `a..b`, `-a` or `a-.b`
is no DNS name, no certificate SAN of ours carries it, and an identity parsed from one could
never be matched."""

from __future__ import annotations

import pytest

from smi.identity import Identity, IdentityError, check_trust_domain
from smi.validation.names import is_subdomain


@pytest.mark.parametrize("name", ["a..b", "a-.b", "a.-b", "-a", "a.", ".a", "x" * 254])
def test_a_trust_domain_is_a_dns_subdomain(name: str) -> None:
    assert not is_subdomain(name)
    with pytest.raises(IdentityError):
        check_trust_domain(name)
    with pytest.raises(IdentityError):
        Identity.parse(f"spiffe://{name}/ns/shop/sa/web")


@pytest.mark.parametrize("sa", ["a..b", "a-.b", "b-"])
def test_a_service_account_is_a_dns_subdomain(sa: str) -> None:
    for text in (f"shop/{sa}", f"spiffe://cluster.local/ns/shop/sa/{sa}"):
        with pytest.raises(IdentityError):
            Identity.parse(text)


@pytest.mark.parametrize("name", ["cluster.local", "a", "a-b.c-d.e", "x" * 63 + ".io"])
def test_dns_names_are_accepted_alike(name: str) -> None:
    assert is_subdomain(name)
    assert check_trust_domain(name) == name
    assert Identity.parse(f"spiffe://{name}/ns/shop/sa/{name}").service_account == name
