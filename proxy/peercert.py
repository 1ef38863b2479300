"""The SPIFFE identity of a TLS peer, read from the certificate OpenSSL verified.

`ssl.SSLObject.getpeercert()` (the decoded form) returns the peer certificate's fields only
when the certificate was verified during the handshake; for an unverified one it returns an
empty dict. Both of the proxy's contexts use `CERT_REQUIRED` with the mesh CA as the only trust
anchor (`proxy.tls`), so a handshake that completed had a certificate chaining to the mesh CA,
valid now; the decoded form carries its `subjectAltName`, URIs included. Reading the identity
from it needs no X.509 parser of our own, which keeps `cryptography` (about 8 MB resident) out
of a proxy that gets its certificates from files.

The rule is `smi.identity.identity_among`, as for `smi.pki.identity_of`: exactly one URI SAN
(none, or several, is no identity), a `spiffe://` one that parses as a workload identity, in
`trust_domain` when one is given.

One thing the decoded form leaves out is basicConstraints, and OpenSSL accepts a CA
certificate as a TLS peer's own certificate. A CA is never a workload (the mesh CA issues
workloads `CA:FALSE`; X.509-SVID: a leaf with `cA` true must be rejected), so `is_ca` reads
that one extension from the DER bytes, with a few lines of DER walking rather than an X.509
library, and a CA peer has no identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from smi.identity import Identity, identity_among

_SEQUENCE, _BOOLEAN, _OID, _OCTETS, _EXTENSIONS = 0x30, 0x01, 0x06, 0x04, 0xA3
_BASIC_CONSTRAINTS = b"\x55\x1d\x13"  # 2.5.29.19


def identity_in(cert: dict[str, Any], *, trust_domain: str | None = None) -> Identity | None:
    """The workload identity in a decoded, verified certificate (`getpeercert()`), or None."""
    uris = [v for kind, v in cert.get("subjectAltName") or () if kind == "URI"]
    return identity_among(uris, trust_domain=trust_domain)


def peer_identity(ssl_object: Any, *, trust_domain: str | None = None) -> Identity | None:
    """The identity of the verified peer of an `ssl.SSLObject` (None without one, or when the
    peer's certificate is a CA's)."""
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()  # {} unless the peer's certificate was verified
    if not cert or is_ca(ssl_object.getpeercert(True) or b""):
        return None
    return identity_in(cert, trust_domain=trust_domain)


def is_ca(der: bytes) -> bool:
    """True when the DER certificate says `CA:TRUE` in basicConstraints, or cannot be read
    (fail closed: OpenSSL verified these bytes, so that only happens to a bug)."""
    try:
        return _basic_constraints_ca(der)
    except (IndexError, ValueError):
        return True


def _basic_constraints_ca(der: bytes) -> bool:
    tag, start, end = _tlv(der, 0)
    tbs_tag, tbs_start, tbs_end = _tlv(der, start)
    if tag != _SEQUENCE or tbs_tag != _SEQUENCE or end != len(der):
        raise ValueError("not a certificate")
    for tag, start, _end in _children(der, tbs_start, tbs_end):
        if tag == _EXTENSIONS:
            _, seq_start, seq_end = _tlv(der, start)
            return any(
                _extension_says_ca(der, s, e) for _, s, e in _children(der, seq_start, seq_end)
            )
    return False


def _extension_says_ca(der: bytes, start: int, end: int) -> bool:
    """One `Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }`."""
    parts = list(_children(der, start, end))
    (oid_tag, oid_start, oid_end), (value_tag, value_start, _) = parts[0], parts[-1]
    if oid_tag != _OID or der[oid_start:oid_end] != _BASIC_CONSTRAINTS:
        return False
    if value_tag != _OCTETS:
        raise ValueError("basicConstraints value is not an OCTET STRING")
    _, seq_start, seq_end = _tlv(der, value_start)  # BasicConstraints ::= SEQUENCE { cA, ... }
    for tag, s, e in _children(der, seq_start, seq_end):
        return tag == _BOOLEAN and der[s:e] != b"\x00"  # only the first field can be cA
    return False


def _children(der: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(tag, content start, content end) of each element inside der[start:end]."""
    pos = start
    while pos < end:
        tag, s, e = _tlv(der, pos)
        if e > end:
            raise ValueError("element runs past its parent")
        yield tag, s, e
        pos = e


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """The DER element at `pos`: (tag, content start, content end); single-byte tags only
    (X.509 uses no others)."""
    tag, length = der[pos], der[pos + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte tag")
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4:
            raise ValueError("bad length")
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise ValueError("truncated")
    return tag, pos, pos + length
