"""What a run found: checks, step results, scenario results, and the summary per SMI
group/version in the spirit of Meshery's SMI conformance report.

A step is `passed` only when every check held; `skipped` always carries the reason (a target
that cannot run a step kind says why, and the step never counts as passed); `error` means the
target itself broke (a server died), not that the mesh misbehaved.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["passed", "failed", "skipped", "error"]
Capability = Literal["full", "partial", "none"]
Verdict = Literal["PASS", "FAIL", "NOTHING VERIFIED"]


@dataclass(frozen=True, slots=True)
class Check:
    """One expectation: what was expected and what happened, as short text. `skipped` says
    why the target could not observe it (the check is then neither passed nor failed, and
    its step is skipped)."""

    what: str
    expected: str
    got: str
    ok: bool
    skipped: str = ""

    def line(self) -> str:
        mark = "skipped" if self.skipped else "ok" if self.ok else "FAILED"
        return f"{self.what}: expected {self.expected}, got {self.got} [{mark}]"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "what": self.what,
            "expected": self.expected,
            "got": self.got,
            "ok": self.ok,
        }
        if self.skipped:
            out["skipped"] = self.skipped
        return out


@dataclass(frozen=True, slots=True)
class StepResult:
    index: int
    kind: str
    title: str
    status: Status
    checks: tuple[Check, ...] = ()
    reason: str = ""
    seconds: float = 0.0

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok and not c.skipped)

    @property
    def number(self) -> int:
        """1-based, the way kuttl numbers steps."""
        return self.index + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "kind": self.kind,
            "title": self.title,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 4),
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    scenario: str
    target: str
    description: str
    capability: str
    smi_versions: tuple[str, ...]
    decisions: tuple[str, ...]
    status: Status
    steps: tuple[StepResult, ...] = ()
    seconds: float = 0.0
    error: str = ""

    @property
    def area(self) -> str:
        return self.scenario.split("/", 1)[0]

    @property
    def skip_reasons(self) -> list[str]:
        return sorted({s.reason for s in self.steps if s.status == "skipped" and s.reason})

    def failure_text(self) -> str:
        """Every failed step with each expectation that did not hold, for humans."""
        lines = [f"{self.target} {self.scenario}: {self.status}"]
        if self.error:
            lines.append(f"  {self.error}")
        for s in self.steps:
            if s.status in ("failed", "error"):
                lines.append(f"  step {s.number} ({s.kind}) {s.title}: {s.status}")
                lines.extend(
                    f"    {c.what}: expected {c.expected}, got {c.got}" for c in s.failures
                )
                if s.reason:
                    lines.append(f"    {s.reason}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "target": self.target,
            "area": self.area,
            "description": self.description,
            "capability": self.capability,
            "smi_versions": list(self.smi_versions),
            "decisions": list(self.decisions),
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "steps": [s.to_json() for s in self.steps],
        }


def scenario_status(steps: list[StepResult]) -> Status:
    statuses = {s.status for s in steps}
    worst: tuple[Status, ...] = ("error", "failed", "skipped")
    return next((w for w in worst if w in statuses), "passed")


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One SMI group/version on one target."""

    target: str
    group_version: str
    passed: int
    failed: int
    skipped: int

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped

    @property
    def capability(self) -> Capability:
        if self.passed == 0:
            return "none"
        return "full" if self.failed == 0 and self.skipped == 0 else "partial"

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "group_version": self.group_version,
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "capability": self.capability,
        }


@dataclass
class RunResult:
    """A whole run: every scenario result of every target, and what was selected."""

    targets: list[str]
    results: list[ScenarioResult] = field(default_factory=list)
    started: str = ""
    seconds: float = 0.0
    version: str = ""
    selection: dict[str, str] = field(default_factory=dict)
    target_errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.target_errors and all(
            r.status in ("passed", "skipped") for r in self.results
        )

    @property
    def unverified(self) -> list[str]:
        """Targets that ran and passed no scenario, every one skipped (UDP on the proxy
        target): nothing failed there, but nothing was shown either. A target where a scenario
        failed or errored is not one: it showed something, a failure."""
        return [
            t
            for t in self.targets
            if t not in self.target_errors
            and not (counts := self.counts(t))["passed"]
            and not counts["failed"]
            and not counts["error"]
        ]

    @property
    def verdict(self) -> Verdict:
        """PASS only when nothing failed and every target verified something: a run that
        skipped everything must not read as a pass in a CI log or a published report."""
        if not self.ok:
            return "FAIL"
        return "NOTHING VERIFIED" if self.unverified else "PASS"

    def verdict_detail(self) -> str:
        """Why the verdict is NOTHING VERIFIED, in one sentence; empty otherwise."""
        if self.verdict != "NOTHING VERIFIED":
            return ""
        return f"every selected scenario was skipped on {', '.join(self.unverified)}"

    def counts(self, target: str | None = None) -> Counter[str]:
        return Counter(r.status for r in self.results if target in (None, r.target))

    def summary(self) -> list[SummaryRow]:
        """Passed/failed/skipped scenarios per target and SMI group/version (error counts as
        failed), sorted by target then group/version."""
        tally: dict[tuple[str, str], Counter[str]] = {}
        for r in self.results:
            status = "failed" if r.status == "error" else r.status
            for gv in r.smi_versions:
                tally.setdefault((r.target, gv), Counter())[status] += 1
        return [
            SummaryRow(
                target=t,
                group_version=gv,
                passed=c["passed"],
                failed=c["failed"],
                skipped=c["skipped"],
            )
            for (t, gv), c in sorted(
                tally.items(),
                key=lambda kv: (
                    self.targets.index(kv[0][0]) if kv[0][0] in self.targets else 99,
                    kv[0][1],
                ),
            )
        ]

    def by_capability(self) -> list[tuple[str, str, Counter[str]]]:
        """(target, capability, status counts), for the per-behaviour table."""
        tally: dict[tuple[str, str], Counter[str]] = {}
        for r in self.results:
            tally.setdefault((r.target, r.capability), Counter())[r.status] += 1
        return [(t, cap, c) for (t, cap), c in sorted(tally.items())]

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": "smictl conformance",
            "version": self.version,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "selection": self.selection,
            "targets": self.targets,
            "target_errors": self.target_errors,
            "ok": self.verdict == "PASS",
            "verdict": self.verdict,
            "unverified_targets": self.unverified,
            "totals": {t: dict(self.counts(t)) for t in self.targets},
            "summary": [row.to_json() for row in self.summary()],
            "results": [r.to_json() for r in self.results],
        }
