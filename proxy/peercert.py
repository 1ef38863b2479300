"""The SPIFFE identity of a TLS peer, read from the certificate OpenSSL verified.

`ssl.SSLObject.getpeercert()` (the decoded form) returns the peer certificate's fields only
when the certificate was verified during the handshake; for an unverified one it returns an
empty dict. Both of the proxy's contexts use `CERT_REQUIRED` with the mesh CA as the only trust
anchor (`proxy.tls`), so a handshake that completed had a certificate chaining to the mesh CA,
valid now; the decoded form carries its `subjectAltName`, URIs included. Reading the identity
from it needs no X.509 parser of our own, which keeps `cryptography` (about 8 MB resident) out
of a proxy that gets its certificates from files.

The rule is `smi.identity.identity_among`, as for `smi.pki.identity_of`: exactly one
`spiffe://` URI SAN (none, or several, is no identity), that parses as a workload identity, in
`trust_domain` when one is given.
"""

from __future__ import annotations

from typing import Any

from smi.identity import Identity, identity_among


def identity_in(cert: dict[str, Any], *, trust_domain: str | None = None) -> Identity | None:
    """The workload identity in a decoded, verified certificate (`getpeercert()`), or None."""
    uris = [v for kind, v in cert.get("subjectAltName") or () if kind == "URI"]
    return identity_among(uris, trust_domain=trust_domain)


def peer_identity(ssl_object: Any, *, trust_domain: str | None = None) -> Identity | None:
    """The identity of the verified peer of an `ssl.SSLObject` (None without one)."""
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()  # {} unless the peer's certificate was verified
    return identity_in(cert, trust_domain=trust_domain) if cert else None
