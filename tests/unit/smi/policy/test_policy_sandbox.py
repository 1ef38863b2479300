"""Policies are compiled in a child process first: a rego-cpp crash costs a child, not us."""

from __future__ import annotations

import time

import pytest
from policy_types import WritePolicy

from smi.errors import PolicyError
from smi.policy import engine, sandbox
from smi.policy.modules import RegoModule
from smi.policy.policyset import PolicySet

# rego-cpp 1.5.2 aborts (std::runtime_error "shape `rego-localref` has no field `rego-refhead`")
# when it compiles `with input as {...}` over a rule that calls a built-in (`>` here).
CRASHER = """
violation contains "big" if input.x > 1

probe if {
	count(violation) == 1 with input as {"x": 3}
}
"""


def test_a_module_that_crashes_regopy_is_a_policy_error_not_a_dead_process(
    write_policy: WritePolicy,
) -> None:
    root = write_policy("crasher", CRASHER)
    with pytest.raises(PolicyError) as info:
        PolicySet.load([root], include_shipped=False)
    [d] = info.value.diagnostics
    assert d.code == "SMI5002"
    assert (d.file, d.line) == (f"{root}/org/crasher/policy.rego", 14)
    assert "the Rego engine crashed (SIGABRT)" in d.message
    assert "with input.request as" in d.message  # the hint that gets the user unstuck
    # and this process goes on loading good policies
    good = write_policy("fine", 'violation contains "x" if input.x\n', root="good")
    assert [p.name for p in PolicySet.load([good], include_shipped=False).policies] == ["fine"]


def test_run_reports_events_and_the_crash_reason() -> None:
    source = "package c\n\n" + CRASHER.replace("violation", "v")
    run = sandbox.run(sandbox.SandboxRequest(modules=[("c.rego", source)], entrypoints=["c/v"]))
    assert not run.finished
    assert run.last_stage == {"stage": "build"}
    crash = run.crash()
    assert crash is not None and crash.startswith("the Rego engine crashed (SIGABRT): shape")


def test_run_evaluates_entrypoints_and_captures_print_output() -> None:
    source = 'package c\n\nv contains x if {\n\tsome x in input.l\n\tprint("saw", x)\n}\n'
    request = sandbox.SandboxRequest(
        modules=[("c.rego", source)], entrypoints=["c/v"], evaluate=[("c/v", {"l": [1]})]
    )
    run = sandbox.run(request)
    assert run.finished and run.crash() is None
    [result] = run.results
    assert (result["ok"], result["output"], result["printed"]) == (
        True,
        '{"expressions":[[1]]}',
        "saw 1\n",
    )


def test_a_child_that_runs_too_long_is_stopped_and_reported() -> None:
    run = sandbox.run(sandbox.SandboxRequest(modules=[], entrypoints=["x/y"]), timeout=0.001)
    assert run.crash() == "the Rego engine crashed (timed out)"


def _module(package: str, body: str) -> RegoModule:
    name = f"{package}/policy.rego"
    return RegoModule(
        name=name,
        source=f"package {package}\n\nimport rego.v1\n\n{body}",
        package=package,
        is_test=False,
    )


# About 3.7 s per rule here with rego-cpp 1.5.2: the probe deadline must stop it, not wait.
SLOW = "".join(
    f"violation contains {i} if {{\n\tsome x in numbers.range(1, 1000)\n"
    f"\tsome y in numbers.range(1, 1000)\n\tx * y == -{i}\n}}\n"
    for i in range(1, 4)
)


def test_a_set_slow_on_an_empty_input_is_refused_at_the_probe_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(PolicyError) as info:
        engine.check(
            [_module("fine", 'violation contains "x" if input.x\n'), _module("slow", SLOW)],
            entrypoints=["fine/violation", "slow/violation"],
            data={},
            probe_timeout=0.5,
        )
    [d] = info.value.diagnostics
    assert (d.code, d.file) == ("SMI5003", "slow/policy.rego")
    assert "slow.violation: evaluating it on an empty input took longer than 0.5s" in d.message
    assert time.monotonic() - started < 8  # the three rules alone take about 11 s


def test_a_crash_in_a_later_probe_is_not_a_pass() -> None:
    huge = (
        "violation contains n if {\n\tn := count([x | some x in numbers.range(1, 300000000)])\n}\n"
    )
    with pytest.raises(PolicyError) as info:
        engine.check(
            [_module("fine", 'violation contains "x" if input.x\n'), _module("huge", huge)],
            entrypoints=["fine/violation", "huge/violation"],
            data={},
        )
    [d] = info.value.diagnostics
    assert d.file == "huge/policy.rego"
    assert "huge.violation: the Rego engine crashed" in d.message
