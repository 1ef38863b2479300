"""SPIFFE identities of workloads: `spiffe://<trust-domain>/ns/<namespace>/sa/<name>`.

A workload's identity is its ServiceAccount (DESIGN.md §3). The proxy learns a caller's identity
only from the URI SAN of a verified certificate; this module parses and formats those URIs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_TRUST_DOMAIN = "cluster.local"

# Kubernetes' DNS-1123 names, the one definition (smi.validation.names compiles the same
# patterns): a label, and dot-separated labels. Here, below smi.validation, because the proxy
# reads identities and must not import the validators.
DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = rf"{DNS_LABEL}(\.{DNS_LABEL})*"
MAX_LABEL = 63
MAX_SUBDOMAIN = 253
# Whole-string matches only (`fullmatch`): `$` would also match before a trailing newline, and
# `spiffe://cluster.local/ns/a/sa/b\n` is not the identity `a/b`.
_TRUST_DOMAIN = re.compile(DNS_SUBDOMAIN)
_SPIFFE = re.compile(
    rf"spiffe://(?P<td>{DNS_SUBDOMAIN})/ns/(?P<ns>{DNS_LABEL})/sa/(?P<sa>{DNS_SUBDOMAIN})"
)
_SHORT = re.compile(rf"(?P<ns>{DNS_LABEL})/(?P<sa>{DNS_SUBDOMAIN})")


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
        m = _SPIFFE.fullmatch(text)
        if m and _lengths_fit(m["ns"], m["sa"], m["td"]):
            return cls(namespace=m["ns"], service_account=m["sa"], trust_domain=m["td"])
        m = None if m else _SHORT.fullmatch(text)
        if m and _lengths_fit(m["ns"], m["sa"], ""):  # the trust domain: checked below
            # The same name rules as the SPIFFE form, so that `spiffe_id` parses back: `a/b-`
            # would name an identity that no certificate could ever be read as.
            return cls(
                namespace=m["ns"],
                service_account=m["sa"],
                trust_domain=check_trust_domain(trust_domain),
            )
        raise IdentityError(
            f"{text!r} is not an identity: use spiffe://<trust-domain>/ns/<ns>/sa/<sa> or ns/sa"
        )


def _lengths_fit(namespace: str, service_account: str, trust_domain: str) -> bool:
    return (
        len(namespace) <= MAX_LABEL
        and len(service_account) <= MAX_SUBDOMAIN
        and len(trust_domain) <= MAX_SUBDOMAIN
    )


def check_trust_domain(trust_domain: str) -> str:
    """`trust_domain` when it can stand in a SPIFFE ID (lowercase DNS-like), else IdentityError:
    `spiffe:///ns/a/sa/b` or `spiffe://a b/...` would be IDs no certificate carries."""
    if len(trust_domain) > MAX_SUBDOMAIN or not _TRUST_DOMAIN.fullmatch(trust_domain):
        raise IdentityError(f"invalid trust domain {trust_domain!r}")
    return trust_domain


# The SPIFFE ID standard's syntax (any workload, not only a ServiceAccount's): a trust domain
# of lower-case letters, digits, `.`, `-`, `_`, then path segments of letters, digits, `.`,
# `-`, `_`, none empty, `.` or `..`; 2048 bytes at most.
_ANY_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def spiffe_path(text: str) -> list[str] | None:
    """The path segments of SPIFFE ID `text` (`spiffe://` optional, as IdentityBinding writes
    them), or None when it is no SPIFFE ID by the standard's syntax (`*`, an empty segment)."""
    domain, _, rest = text.removeprefix("spiffe://").partition("/")
    segments = rest.split("/") if rest else []
    if (
        len(text) > 2048
        or not _ANY_TRUST_DOMAIN.fullmatch(domain)
        or not segments
        or any(not _PATH_SEGMENT.fullmatch(x) or x in (".", "..") for x in segments)
    ):
        return None
    return segments


def spiffe_id(
    namespace: str, service_account: str, trust_domain: str = DEFAULT_TRUST_DOMAIN
) -> str:
    return Identity(namespace, service_account, trust_domain).spiffe_id


def identity_among(uris: Iterable[str], *, trust_domain: str | None = None) -> Identity | None:
    """The workload identity among a certificate's URI SANs (all of them), or None: exactly one
    URI SAN, and it parses as a workload identity (in `trust_domain` when one is given). The one
    rule for every certificate reader (`smi.pki.identity_of` on parsed certificates,
    `proxy.peercert` on OpenSSL's decoded form).

    Several URIs are refused even when only one starts with `spiffe://`: URI schemes and hosts
    are case-insensitive, so `SPIFFE://cluster.local/ns/shop/sa/admin` beside
    `spiffe://cluster.local/ns/shop/sa/web` is a second SPIFFE ID, and choosing one would be a
    guess. The X.509-SVID standard says the same: more than one URI SAN, reject the SVID.
    (Non-URI SANs, e.g. DNS names, are allowed beside it.)"""
    uris = list(uris)
    # Only the SPIFFE form: a URI SAN `shop/web` (a relative reference) is no identity.
    m = _SPIFFE.fullmatch(uris[0]) if len(uris) == 1 else None
    if m is None:
        return None
    ident = Identity(namespace=m["ns"], service_account=m["sa"], trust_domain=m["td"])
    if trust_domain is not None and ident.trust_domain != trust_domain:
        return None
    return ident
