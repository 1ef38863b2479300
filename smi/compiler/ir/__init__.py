"""The MeshPolicy: the compiler's output and the only thing a proxy knows about SMI.

Pure Python (stdlib and the RE2 binding only): the proxy imports this package and nothing else
of `smi` but `smi.identity` and `smi.pki`.
"""

from smi.compiler.ir.model import (
    SCHEMA_VERSION,
    AuthzRule,
    Endpoint,
    HttpMatch,
    MeshPolicy,
    Mode,
    Service,
    Split,
    SplitBackend,
)

__all__ = [
    "SCHEMA_VERSION",
    "AuthzRule",
    "Endpoint",
    "HttpMatch",
    "MeshPolicy",
    "Mode",
    "Service",
    "Split",
    "SplitBackend",
]
