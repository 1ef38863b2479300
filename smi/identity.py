"""SPIFFE identities of workloads: `spiffe://<trust-domain>/ns/<namespace>/sa/<name>`.

A workload's identity is its ServiceAccount (DESIGN.md §3). The proxy learns a caller's identity
only from the URI SAN of a verified certificate; this module parses and formats those URIs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_TRUST_DOMAIN = "cluster.local"

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_TRUST_DOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_SPIFFE = re.compile(
    rf"^spiffe://(?P<td>[^/]+)/ns/(?P<ns>{_DNS_LABEL})/sa/(?P<sa>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)$"
)


class IdentityError(ValueError):
    """A string is not a workload identity."""


@dataclass(frozen=True, slots=True, order=True)
class Identity:
    namespace: str
    service_account: str
    trust_domain: str = DEFAULT_TRUST_DOMAIN

    @property
    def spiffe_id(self) -> str:
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    @property
    def short(self) -> str:
        """`ns/sa`, the way the CLI and reports name identities."""
        return f"{self.namespace}/{self.service_account}"

    def __str__(self) -> str:
        return self.spiffe_id

    @classmethod
    def parse(cls, text: str, *, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> Identity:
        """Accept a SPIFFE URI or the short `ns/sa` form."""
        m = _SPIFFE.match(text)
        if m:
            return cls(namespace=m["ns"], service_account=m["sa"], trust_domain=m["td"])
        ns, sep, sa = text.partition("/")
        if sep and re.fullmatch(_DNS_LABEL, ns) and re.fullmatch(r"[a-z0-9][-a-z0-9.]*", sa):
            return cls(
                namespace=ns, service_account=sa, trust_domain=check_trust_domain(trust_domain)
            )
        raise IdentityError(
            f"{text!r} is not an identity: use spiffe://<trust-domain>/ns/<ns>/sa/<sa> or ns/sa"
        )


def check_trust_domain(trust_domain: str) -> str:
    """`trust_domain` when it can stand in a SPIFFE ID (lowercase DNS-like), else IdentityError:
    `spiffe:///ns/a/sa/b` or `spiffe://a b/...` would be IDs no certificate carries."""
    if not _TRUST_DOMAIN.match(trust_domain):
        raise IdentityError(f"invalid trust domain {trust_domain!r}")
    return trust_domain


def spiffe_id(
    namespace: str, service_account: str, trust_domain: str = DEFAULT_TRUST_DOMAIN
) -> str:
    return Identity(namespace, service_account, trust_domain).spiffe_id


def identity_among(uris: Iterable[str], *, trust_domain: str | None = None) -> Identity | None:
    """The workload identity among a certificate's URI SANs, or None: exactly one `spiffe://`
    URI (none, or several — ambiguous, so trusted for nothing), that parses as a workload
    identity, in `trust_domain` when one is given. The one rule for every certificate reader
    (`smi.pki.identity_of` on parsed certificates, `proxy.peercert` on OpenSSL's decoded form)."""
    spiffe = [u for u in uris if u.startswith("spiffe://")]
    if len(spiffe) != 1:
        return None
    try:
        ident = Identity.parse(spiffe[0])
    except IdentityError:
        return None
    if trust_domain is not None and ident.trust_domain != trust_domain:
        return None
    return ident
