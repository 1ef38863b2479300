"""The places a scenario can run: `inproc` (smictl's functions in this process), `webhook`
(a real `smictl serve` control plane over HTTPS) and `proxy` (the control plane plus real
sidecar proxies and test services on 127.0.0.1). Targets load lazily, so `inproc` never pays
for the servers' imports.
"""

from __future__ import annotations

from conformance.targets.base import Target, TargetError

TARGETS: tuple[str, ...] = ("inproc", "webhook", "proxy")


def make_target(name: str) -> Target:
    if name == "inproc":
        from conformance.targets.inproc import InprocTarget

        return InprocTarget()
    if name == "webhook":
        from conformance.targets.webhook import WebhookTarget

        return WebhookTarget()
    if name == "proxy":
        from conformance.targets.proxy import ProxyTarget

        return ProxyTarget()
    raise ValueError(f"unknown target {name!r}; use one of {', '.join(TARGETS)} or all")


__all__ = ["TARGETS", "Target", "TargetError", "make_target"]
