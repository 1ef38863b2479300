"""Policies are compiled in a child process first: a rego-cpp crash costs a child, not us."""

from __future__ import annotations

import pytest
from policy_types import WritePolicy

from smi.errors import PolicyError
from smi.policy import sandbox
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
