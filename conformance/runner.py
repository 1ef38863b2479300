"""Run scenarios against targets, step by step, kuttl-style.

Steps run in order. A failed request or admission step does not stop the scenario (the next
steps still tell something); a failed or skipped `apply`/`delete` does, since the state every
later step assumes is then unknown — those steps are reported as skipped, with the reason.
`end()` always runs, so a failing scenario never leaks objects into the next one.

Every step has a deadline (`Target.step_timeout`, `conformance.deadline`): a step still running
then is abandoned and fails, and the scenario's later steps are skipped (the target may be in
the middle of something), so a mesh that hangs fails one scenario instead of the whole run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from conformance.assertions import (
    check_admit,
    check_apply,
    check_connect,
    check_convert,
    check_request,
)
from conformance.deadline import StepTimeout, deadline
from conformance.model import (
    AdmitStep,
    ApplyStep,
    ConnectStep,
    ConvertStep,
    DeleteStep,
    RequestStep,
    Scenario,
    Step,
    step_kind,
    step_title,
)
from conformance.results import Check, RunResult, ScenarioResult, StepResult, scenario_status
from conformance.targets.base import Target, TargetError

Progress = Callable[[ScenarioResult], None]
_STATEFUL = ("apply", "delete")


def execute(target: Target, scenario: Scenario, step: Step) -> list[Check]:
    """Perform one step on the target and judge what it observed."""
    if isinstance(step, ApplyStep):
        return check_apply(step.expect, target.apply(scenario, step.apply), verb="apply")
    if isinstance(step, DeleteStep):
        return check_apply(step.expect, target.delete(scenario, step.delete), verb="delete")
    if isinstance(step, AdmitStep):
        return check_admit(step.expect, target.admit(scenario, step.admit))
    if isinstance(step, ConvertStep):
        return check_convert(step.expect, target.convert(scenario, step.convert))
    if isinstance(step, ConnectStep):
        t0 = time.perf_counter()
        obs = target.connect(scenario, step.connect)
        return check_connect(
            step.expect,
            obs,
            count=step.connect.count,
            seconds=time.perf_counter() - t0,
            unobserved=target.unobserved,
        )
    assert isinstance(step, RequestStep)
    t0 = time.perf_counter()
    obs = target.request(scenario, step.request)
    seconds = time.perf_counter() - t0
    return check_request(
        step.expect,
        obs,
        count=step.request.count,
        seconds=seconds,
        unobserved=target.unobserved,
    )


def run_scenario(target: Target, scenario: Scenario) -> ScenarioResult:
    started = time.perf_counter()
    steps: list[StepResult] = []
    error = ""
    try:
        target.begin(scenario)
        steps = _run_steps(target, scenario)
    except TargetError as exc:
        error = f"target {target.name} failed to set up the scenario: {exc}"
    finally:
        try:
            target.end(scenario)
        except TargetError as exc:
            error = error or f"target {target.name} failed to clean up: {exc}"
    status = "error" if error else scenario_status(steps)
    return ScenarioResult(
        scenario=scenario.name,
        target=target.name,
        description=scenario.description,
        capability=scenario.capability,
        smi_versions=scenario.smi_versions,
        decisions=scenario.decisions,
        status=status,
        steps=tuple(steps),
        seconds=time.perf_counter() - started,
        error=error,
    )


def _run_steps(target: Target, scenario: Scenario) -> list[StepResult]:
    out: list[StepResult] = []
    halted = ""
    for i, step in enumerate(scenario.steps):
        kind, title = step_kind(step), step_title(step)
        if halted:
            out.append(StepResult(i, kind, title, "skipped", reason=halted))
            continue
        reason = target.unsupported(step, scenario)
        if reason:
            out.append(StepResult(i, kind, title, "skipped", reason=f"{target.name}: {reason}"))
            if kind in _STATEFUL:
                halted = f"not run: step {i + 1} ({kind}) was skipped"
            continue
        t0 = time.perf_counter()
        limit = target.step_timeout
        try:
            with deadline(limit):
                checks = execute(target, scenario, step)
        except StepTimeout:
            late = Check(
                "finished",
                f"within {limit:g} s (the step deadline)",
                f"still running after {limit:g} s: abandoned",
                False,
            )
            out.append(
                StepResult(i, kind, title, "failed", (late,), seconds=time.perf_counter() - t0)
            )
            halted = f"not run: step {i + 1} did not finish within {limit:g} s"
            continue
        except TargetError as exc:
            out.append(
                StepResult(
                    i, kind, title, "error", reason=str(exc), seconds=time.perf_counter() - t0
                )
            )
            halted = f"not run: step {i + 1} broke the target"
            continue
        ok = all(c.ok for c in checks)
        unseen = sorted({c.skipped for c in checks if c.skipped})
        out.append(
            StepResult(
                i,
                kind,
                title,
                "failed" if not ok else "skipped" if unseen else "passed",
                tuple(checks),
                reason="; ".join(f"{target.name}: {u}" for u in unseen) if ok else "",
                seconds=time.perf_counter() - t0,
            )
        )
        if not ok and kind in _STATEFUL:
            halted = f"not run: step {i + 1} ({kind}) failed, the state is unknown"
    return out


def run(
    targets: Iterable[Target],
    scenarios: list[Scenario],
    *,
    progress: Progress | None = None,
    version: str = "",
    selection: dict[str, str] | None = None,
) -> RunResult:
    """Every scenario on every target. A target that cannot start is recorded as an error of
    the run (and fails it); the other targets still run."""
    targets = list(targets)
    result = RunResult(
        targets=[t.name for t in targets],
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        version=version,
        selection=dict(selection or {}),
    )
    t0 = time.perf_counter()
    for target in targets:
        try:
            target.plan(scenarios)
            with target:
                for scenario in scenarios:
                    r = run_scenario(target, scenario)
                    result.results.append(r)
                    if progress is not None:
                        progress(r)
        except TargetError as exc:
            result.target_errors[target.name] = str(exc)
    result.seconds = time.perf_counter() - t0
    return result
