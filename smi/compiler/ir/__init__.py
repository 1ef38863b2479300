"""The MeshPolicy: the compiler's output and the only thing a proxy knows about SMI.

Pure Python (stdlib, the RE2 binding and `smi.identity` only): the proxy imports this package and
nothing else of `smi` but `smi.identity` and `smi.pki`. `model` holds the types and their JSON,
`index` the per-revision lookup tables, `decide` the two decisions (`authorize`,
`pick_backend`), `matching` the RE2 matchers.
"""

from smi.compiler.ir.decide import Request, authorize, pick_backend
from smi.compiler.ir.decision import REASONS, Decision, Reason
from smi.compiler.ir.index import PolicyIndex
from smi.compiler.ir.model import (
    SCHEMA_VERSION,
    AuthzRule,
    Endpoint,
    HttpMatch,
    MeshPolicy,
    MeshPolicyFormatError,
    Mode,
    Service,
    Split,
    SplitBackend,
)

__all__ = [
    "REASONS",
    "SCHEMA_VERSION",
    "AuthzRule",
    "Decision",
    "Endpoint",
    "HttpMatch",
    "MeshPolicy",
    "MeshPolicyFormatError",
    "Mode",
    "PolicyIndex",
    "Reason",
    "Request",
    "Service",
    "Split",
    "SplitBackend",
    "authorize",
    "pick_backend",
]
