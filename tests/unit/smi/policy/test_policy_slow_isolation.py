"""One policy's stall or crash is that policy's failure only: every other policy of the
admission still gives its real verdict, deny policies are evaluated before warn policies, and
the whole admission answers within the policy set's budget however many policies are slow.

Before, one evaluator exchange with one deadline served a whole group of policies, and its
failure was copied to every policy in it: a slow `warn` policy made an innocent `deny` policy
deny every object ("[never] policy evaluation failed: ... took longer than 2s")."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from policy_types import WritePolicy

from smi.policy import engine as engine_mod
from smi.policy.admission import AdmissionResult, admit
from smi.policy.modules import policies_of, read_modules
from smi.policy.policyset import PolicySet

# Slow only for an object named "slowme" (the load-time probes never are): many seconds.
SLOW = """
violation contains "slow" if {
	input.hub.metadata.name == "slowme"
	n := count([i | some i in numbers.range(1, 6000); some j in numbers.range(1, 6000); i == j])
	n < 0
}
"""
# Gigabytes for an object named "slowme": past a 64 MiB budget the child aborts.
HUGE = """
violation contains "huge" if {
	input.hub.metadata.name == "slowme"
	n := count([i | some i in numbers.range(1, 300000000)])
	n < 0
}
"""
NEVER = 'violation contains "never" if input.hub.metadata.name == "no-such-name"\n'
ALWAYS = 'violation contains "always" if input.hub.metadata.name\n'


def _route(name: str) -> dict[str, Any]:
    return {
        "uid": "u-1",
        "kind": {"kind": "TCPRoute"},
        "namespace": "shop",
        "operation": "CREATE",
        "object": {
            "apiVersion": "specs.smi-spec.io/v1alpha4",
            "kind": "TCPRoute",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"matches": {"ports": [1]}},
        },
    }


def _policies(root: Path, *, budget: float = 2.5, **limits: Any) -> PolicySet:
    modules = [m for m in read_modules([root]) if not m.is_test]
    infos = policies_of(modules)
    engine = engine_mod.EmbeddedEngine(
        modules, entrypoints=[p.entrypoint for p in infos], data={}, **limits
    )
    return PolicySet(policies=tuple(infos), engine=engine, modules=tuple(modules), budget=budget)


def _close(policies: PolicySet) -> None:
    assert isinstance(policies.engine, engine_mod.EmbeddedEngine)
    policies.engine.close()


def _timed(request: dict[str, Any], policies: PolicySet) -> tuple[AdmissionResult, float]:
    started = time.monotonic()
    result = admit(request, policies)
    return result, time.monotonic() - started


def test_a_slow_warn_policy_leaves_the_deny_policies_their_verdict(
    write_policy: WritePolicy,
) -> None:
    write_policy("a-slow", SLOW, enforcement="warn")
    root = write_policy("never", NEVER)
    policies = _policies(root, timeout=0.5)
    result, took = _timed(_route("slowme"), policies)
    assert (result.allowed, result.code, result.messages) == (True, 200, ())
    assert result.warnings == (
        "[a-slow] policy evaluation failed: policy evaluation took longer than 0.5s and was "
        "stopped",
    )
    assert took < 2.0
    _close(policies)


def test_a_slow_deny_policy_fails_alone(write_policy: WritePolicy) -> None:
    write_policy("a-slow", SLOW)
    write_policy("b-always", ALWAYS)
    root = write_policy("c-never", NEVER)
    policies = _policies(root, timeout=0.5)
    result, _ = _timed(_route("slowme"), policies)
    assert result.messages == (
        "[a-slow] policy evaluation failed: policy evaluation took longer than 0.5s and was "
        "stopped",
        "[b-always] always",
    )
    # the next admission is served normally by a fresh evaluator
    assert admit(_route("fine"), policies).messages == ("[b-always] always",)
    _close(policies)


def test_a_crashing_policy_fails_alone(write_policy: WritePolicy) -> None:
    write_policy("a-huge", HUGE)
    root = write_policy("b-always", ALWAYS)
    policies = _policies(root, timeout=2.5, memory_limit=64 << 20)
    result, _ = _timed(_route("slowme"), policies)
    assert len(result.messages) == 2 and result.messages[1] == "[b-always] always"
    assert result.messages[0].startswith(
        "[a-huge] policy evaluation failed: the Rego engine crashed (SIGABRT; out of its 64 MiB"
    )
    _close(policies)


def test_many_slow_policies_stay_within_the_budget_and_deny_first(
    write_policy: WritePolicy,
) -> None:
    for name in ("a-slow", "b-slow", "c-slow", "d-slow"):
        write_policy(name, SLOW, enforcement="warn")
    root = write_policy("z-always", ALWAYS)
    policies = _policies(root, timeout=0.5, budget=1.2)
    result, took = _timed(_route("slowme"), policies)
    assert took < 2.0, f"{took:.1f}s: the budget does not bound the admission"
    assert result.messages == ("[z-always] always",)  # evaluated first, within the budget
    assert len(result.warnings) == 4
    assert any("this admission's time for policies" in w for w in result.warnings)
    _close(policies)


def test_policies_on_one_document_are_one_request_to_the_evaluator(
    write_policy: WritePolicy, monkeypatch: Any
) -> None:
    """Deny before warn is an order of evaluation, not a second request: consecutive steps on
    the same input document go to the evaluator together (it answers entrypoint by
    entrypoint, each on its own clock). Two requests cost /validate 1.40 ms of server CPU
    against 1.30 ms (bench_webhook, one TrafficSplit, a deny and a warn policy)."""
    write_policy("b-warn", ALWAYS, enforcement="warn")
    write_policy("c-never", NEVER)
    root = write_policy("a-always", ALWAYS)
    policies = _policies(root)
    asked = _requests_to_the_evaluator(monkeypatch)
    try:
        result = admit(_route("r"), policies)
    finally:
        _close(policies)
    assert asked == [["a_always", "c_never", "b_warn"]]  # deny first, then warn: one request
    assert result.messages == ("[a-always] always",)
    assert result.warnings == ("[b-warn] always",)


def test_the_deny_group_with_warn_policies_goes_last_to_share_its_request(
    write_policy: WritePolicy, monkeypatch: Any
) -> None:
    """Policies asking for an inventory have a document of their own. With the shipped set a
    TrafficTarget took three requests (deny on the plain document, deny on the inventory one,
    then warn on the plain one, sent again); the deny group that also has warn policies now
    goes last, so it and its warn policies are one request: two in all, deny still first."""
    write_policy("b-warn", ALWAYS, enforcement="warn")
    write_policy("a-plain", NEVER)
    root = write_policy("c-inventory", NEVER, extra="inventory: [ServiceAccount]")
    policies = _policies(root)
    asked = _requests_to_the_evaluator(monkeypatch)
    try:
        result = admit(_route("r"), policies)
    finally:
        _close(policies)
    assert asked == [["c_inventory"], ["a_plain", "b_warn"]]
    assert (result.allowed, result.warnings) == (True, ("[b-warn] always",))


def _requests_to_the_evaluator(monkeypatch: Any) -> list[list[str]]:
    """Record each request to the evaluator child: the policy names it asked for."""
    from smi.policy import sandbox

    asked: list[list[str]] = []
    original = sandbox.EvalServer._round

    def counted(self: Any, entrypoints: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append([e.replace("/", ".").split(".")[-2] for e in entrypoints])
        return original(self, entrypoints, *args, **kwargs)

    monkeypatch.setattr(sandbox.EvalServer, "_round", counted)
    return asked
