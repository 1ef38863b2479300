"""The vocabulary of authorization decisions: `Decision` and its closed set of reasons.

Kept apart from `decide` (the algorithm) and `index` (the pre-built tables) so that the index can
pre-build the decisions it will hand out: an allow costs no allocation on the request path.
`reason` is used as a metric label, so it only ever takes one of `REASONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from smi.compiler.ir.model import Mode

Reason = Literal[
    "allow",
    "permissive",
    "no-identity",
    "no-traffic-target",
    "source-not-allowed",
    "port-not-allowed",
    "no-route-match",
    "protocol-not-allowed",
]
REASONS: tuple[Reason, ...] = get_args(Reason)

Protocol = Literal["http", "tcp", "udp"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "may this caller do this?".

    `allowed` is what the proxy enforces. In deny mode it is the verdict. In audit mode it is
    always True, and `would_deny` with `reason`/`rules` record what deny mode would have done.
    In permissive mode everything is allowed with reason "permissive".
    `rules`: on an allow, the origin of the TrafficTarget that allowed it (`detail` names the
    HTTP match or the L4 grant); on a deny, the TrafficTargets that were considered.
    """

    allowed: bool
    mode: Mode
    reason: Reason
    rules: tuple[str, ...]
    would_deny: bool = False
    detail: str = ""


def denied(
    *, mode: Mode, reason: Reason, rules: tuple[str, ...] = (), detail: str = ""
) -> Decision:
    """A deny in deny mode; in audit mode an allow that records the would-be deny."""
    if mode == "audit":
        return Decision(True, mode, reason, rules, True, detail)
    return Decision(False, mode, reason, rules, False, detail)
